"""All of the bank's SQL: the schema and one module of queries per table group.

The functions here take an open :class:`~ecash_tpm.storage.Transaction` and return plain or
typed values; they never open, commit or retry a transaction themselves, so the domain modules
keep deciding what is atomic (DESIGN §7: money moves only inside one transaction).

- :mod:`.schema` — ``MIGRATIONS`` (component ``bank``)
- :mod:`.accounts` — bank_account, customer_auth, auth_token, merchant
- :mod:`.ledger` — ledger_txn, ledger_entry
- :mod:`.keysets` — keyset
- :mod:`.withdrawals` — withdrawal, withdrawal_item
- :mod:`.deposits` — deposit, spend_transcript, spent_coin, coin_lock
- :mod:`.reports` — double_spend_report
- :mod:`.swaps` — swap, swap_input, swap_output (component ``bank_swap``)
- :mod:`.swap_reports` — swap_report (component ``bank_swap_reports``)
- :mod:`.blacklist` — verification_failure, blacklist
"""

from __future__ import annotations

from ecash_tpm.bank.store.schema import MIGRATIONS

__all__ = ["MIGRATIONS"]
