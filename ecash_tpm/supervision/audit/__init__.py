"""The supervision department's audit of a bank, from outside the bank's code (DESIGN §1, §8).

GNU Taler's lesson: the exchange is checked by an auditor that reads the exchange's database
with its *own* queries and re-verifies every signature with the *pure* cryptography, so a bug
(or a lie) in the exchange's code cannot hide in the auditor too. This package therefore imports
nothing from :mod:`ecash_tpm.bank`: it opens the bank's database read-only (one snapshot),
reads the tables of the bank's schema (``ecash_tpm/bank/store/schema.py``, migration 1) with
SQL of its own (:mod:`.store`), and checks them with :mod:`ecash_tpm.crypto`, the protocol's
one spend check and the central bank's certificate checks.

Like Taler's auditor helpers, there is one analysis per area over a shared
:class:`~.context.AuditContext` (inputs, what earlier areas learned, the findings);
:func:`run_audit` (:mod:`.run`) runs them in order. Each failure is a
:class:`~ecash_tpm.supervision.audit_report.Violation` naming the table, row, serial, and
expected vs found; kinds in ``audit_report.VIOLATION_KINDS``:

- :mod:`.keysets`: signed by the bank's certified key, ``keyset_id`` commits to key and
  windows, rows agree with their descriptors;
- :mod:`.withdrawals`: every stored blind signature verifies (s^e = blinded mod n), items were
  signed inside the withdraw window, amounts match the items, the ledger transaction books
  exactly the customer debit and the keysets' credit;
- :mod:`.deposits` and :mod:`.transcripts`: every transcript verifies — keyset open for deposit
  at the deposit time, coin signature under its keyset, the credential check (designated with
  the issuer secret of the coin's epoch; without it publicly with pairings under the epoch's
  certified G2 keys, docs/protocol.md §7.4; skipped, and said so, without either), the spend
  proof over the recorded preq with the opener key, the merchant's signature on the payment
  request (certificate from the central bank), the bank's signature on the receipt and the
  receipt's content; amounts and ledger transaction match the coins;
- :mod:`.serials`: none spent or transcribed twice; spent rows agree with transcripts;
- :mod:`.ledger`: every transaction sums to zero, all entries sum to zero, no withdraw/deposit
  transaction without its record, customers never negative, merchants hold their deposits;
- :mod:`.supply`, per keyset: withdrawn - deposited = outstanding in the ledger, withdrawn =
  value x signatures issued, deposited = value x serials spent (counts and values);
- :mod:`.blacklist`: every entry names at least ``threshold`` recorded failures of that subject
  within ``window_s`` before ``listed_at`` (the policy recorded with the entry), none used up
  by an earlier lifted entry; every lifted entry says who lifted it and why;
- :mod:`.double_spends`: the refused attempt and the first transcript are two valid spends of
  one serial for different requests (else the bank accused a customer wrongly);
- :mod:`.supply_report`, optionally: the bank's latest money-supply report (central bank),
  signature and certificate, and :func:`~ecash_tpm.protocol.supply.check_supply_report`
  against the audit's own outstanding values *as of the report's time*.
"""

from __future__ import annotations

from ecash_tpm.supervision.audit.context import EpochSecrets
from ecash_tpm.supervision.audit.run import run_audit
from ecash_tpm.supervision.audit.store import BANK_SCHEMA_COMPONENT, open_bank_database

__all__ = ["BANK_SCHEMA_COMPONENT", "EpochSecrets", "open_bank_database", "run_audit"]
