"""The fair-exchange TTP without HTTP (DESIGN §6): escrow at registration, act only on dispute.

:class:`Ttp` gets its identity, database, a link to the bank and a factory of merchant links
injected, so tests drive it directly and the routes are a thin shell. It is a facade over

- :class:`~ecash_tpm.ttp.products.ProductEscrow` — registration, descriptors, ciphertexts and
  the escrowed keys (docs/protocol.md §16.3);
- :class:`~ecash_tpm.ttp.disputes.DisputeDesk` — the bank's deposit query, the merchant's key
  request, deadlines and strikes (§16.5).

The TTP is never part of a payment: an honest purchase involves customer, merchant and bank
only (§16.4). The online-TTP comparison of the benchmarks lives in ``benchmarks/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecash_tpm.errors import ConfigError
from ecash_tpm.pki import verify_party_certificate
from ecash_tpm.ttp.config import BankQueryGateway, MerchantLink, TtpConfig, TtpSigner, aware
from ecash_tpm.ttp.disputes import DisputeDesk
from ecash_tpm.ttp.models import (
    DisputeKey,
    DisputeView,
    ProductAnswer,
    ProductList,
    RegistrationAnswer,
    Strike,
    TtpInfo,
    TtpStats,
)
from ecash_tpm.ttp.products import ProductEscrow
from ecash_tpm.ttp.store import TtpStore

__all__ = ["BankQueryGateway", "MerchantLink", "Ttp", "TtpConfig"]


class Ttp:
    """Escrow and dispute resolution of one TTP; thread-safe."""

    def __init__(
        self,
        config: TtpConfig,
        store: TtpStore,
        bank: BankQueryGateway,
        merchants: Callable[[str, str], MerchantLink],
        *,
        clock: Callable[[], int],
    ) -> None:
        key = verify_party_certificate(
            config.cert_pem, config.root, role="ttp", name=config.name, now=aware(clock())
        )
        if key.public_numbers() != config.key.public_key.public_numbers():
            raise ConfigError("the TTP certificate does not match the TTP key")
        self.config = config
        self.store = store
        self.bank = bank
        self.merchants = merchants
        self.clock = clock
        sign = TtpSigner(config)
        self.escrow = ProductEscrow(config, store, sign=sign, clock=clock)
        self.desk = DisputeDesk(config, store, self.escrow, bank, merchants, sign=sign, clock=clock)

    @property
    def name(self) -> str:
        return self.config.name

    def info(self) -> TtpInfo:
        """Public facts: id, certificate, dispute window."""
        return TtpInfo(self.name, self.config.cert_pem, self.config.dispute_window_s)

    def stats(self) -> TtpStats:
        """Counters by name (registrations, disputes_opened, bank_queries, ...)."""
        return TtpStats(self.store.counters())

    # --- products ------------------------------------------------------------------------------

    def register_product(self, signed: Any, cert_pem: str) -> RegistrationAnswer:
        """Encrypt and escrow a merchant's product; answer descriptor, ciphertext, sealed k."""
        return self.escrow.register_product(signed, cert_pem)

    def product(self, product_id: str) -> ProductAnswer:
        """One product's signed descriptor, with the certificate to check it."""
        return self.escrow.product(product_id)

    def products(self, merchant_id: str | None = None) -> ProductList:
        """Signed descriptors (optionally of one merchant), with the certificate."""
        return self.escrow.products(merchant_id)

    def ciphertext(self, product_id: str) -> bytes:
        """The public ciphertext of a product."""
        return self.escrow.ciphertext(product_id)

    # --- disputes ------------------------------------------------------------------------------

    def open_dispute(self, request_doc: Any, merchant_cert: str, raw_spends: Any) -> DisputeView:
        """Check payment with the bank, open (or find) the dispute, ask the merchant."""
        return self.desk.open_dispute(request_doc, merchant_cert, raw_spends)

    def dispute(self, dispute_id: str) -> DisputeView:
        """The dispute's public view (resolving it first if its deadline passed)."""
        return self.desk.dispute(dispute_id)

    def dispute_key(self, dispute_id: str) -> DisputeKey:
        """The sealed key of a resolved dispute; 409 ``ttp.dispute_pending`` before that."""
        return self.desk.dispute_key(dispute_id)

    def answer_dispute(self, dispute_id: str, doc: Any, cert: str) -> DisputeView:
        """The merchant's answer on its own initiative (it polls ``disputes``)."""
        return self.desk.answer_dispute(dispute_id, doc, cert)

    def disputes(
        self, *, merchant_id: str | None = None, state: str | None = None, sweep: bool = True
    ) -> list[DisputeView]:
        """Public views; overdue ones are resolved first unless ``sweep`` is off."""
        return self.desk.disputes(merchant_id=merchant_id, state=state, sweep=sweep)

    def sweep(self) -> list[str]:
        """Resolve every pending dispute past its deadline; returns their ids."""
        return self.desk.sweep()

    def strikes(self, merchant_id: str | None = None) -> list[Strike]:
        """Strikes recorded against merchants (optionally one), oldest first."""
        return self.desk.strikes(merchant_id)
