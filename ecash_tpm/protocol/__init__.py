"""The wire specification of ecash-tpm: what an independent implementation would read.

Every message a party acts on is a signed object ``{kind, body, signature, signer}`` whose kind,
signer role, body type and verifier are listed in :data:`KINDS` (docs/protocol.md). This package
is pure -- it imports only ``crypto``, ``pki``, ``attest`` and ``errors``, never a web framework,
a database or a party -- so the wallet, the merchant, the bank, the TTP and the audit all check
the same bytes the same way. Modules:

- :mod:`.money` -- :class:`Money` (minor units, currency exponent, checked arithmetic)
- :mod:`.fields` -- the one reader for fields of signed bodies
- :mod:`.keysets` -- bank-signed denomination keysets; :mod:`.coins` -- coins, spends, payment
  requests, deposits; :mod:`.payments` -- keyset lists and deposit receipts
- :mod:`.spend` -- THE spend check (:func:`verify_spend`) every party runs
- :mod:`.join` / :mod:`.registry` -- join messages and the member registry
- :mod:`.evidence` -- double-spend transcripts and evidence; :mod:`.supply` -- supply reports
- :mod:`.exchange` -- fair-exchange messages; :mod:`.api` -- HTTP request/response bodies
- :mod:`.errors` -- one error class per failure, shared by every party

Example: a wallet checks a merchant's payment request before it pays, then the bank's receipt::

    from ecash_tpm.protocol import PaymentRequest, verify_receipt

    req = PaymentRequest.from_signed(doc, merchant_cert_pem, central_bank_root_pem)
    ...  # spend coins over req.preq, send them to the merchant
    receipt = verify_receipt(answer["receipt"], answer["cert"], central_bank_root_pem,
                             preq=req.preq, merchant_id=req.merchant_id, amount=req.amount,
                             currency=req.currency, serials=[c.sigma for c in coins])
"""

from ecash_tpm.protocol.coins import Coin, PaymentRequest, Spend
from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.protocol.kinds import KINDS, Kind
from ecash_tpm.protocol.money import Money
from ecash_tpm.protocol.payments import ReceiptBody, verify_receipt
from ecash_tpm.protocol.spend import verify_spend

__all__ = [
    "KINDS",
    "Coin",
    "Keyset",
    "Kind",
    "Money",
    "PaymentRequest",
    "ReceiptBody",
    "Spend",
    "verify_receipt",
    "verify_spend",
]
