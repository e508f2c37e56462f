"""Read what a running deployment shows anyone: health, certificates, the CRL, the bank's
signed keysets, the group's public parameters, the TTP's strikes. Only public ``GET`` routes, no
token; a party that does not answer is recorded, never fatal. Over https every read checks
the party's certificate like any client does: chain to the central bank's root (the only
trust anchor) and the identity its role and name give (:attr:`Party.tls`); the dashboard
presents no client certificate, since it calls only public routes.

Used by both sources of the page: ``demo --web`` (once the parties run, with the certificates
the demo already holds) and ``dashboard --config`` (polled).
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.errors import EcashError

#: Where each role's certificate is public, and how to read it from the answer.
CERT_ROUTES = {
    "bank": "GET /v1/keysets (bank_cert)",
    "merchant": "GET /v1/merchant (cert)",
    "ttp": "GET /v1/ttp (cert)",
}


@dataclass(frozen=True)
class Party:
    """One party process as the dashboard reaches it."""

    name: str
    role: str  # centralbank, supervision, issuer, bank, merchant, ttp
    url: str
    #: Client context for an https URL (the central bank's root); ``None`` for plain HTTP.
    tls: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    def client_kwargs(self) -> dict[str, Any]:
        """``tls=``/``expect=`` for a client of this party (nothing over plain HTTP; an https
        URL without a context fails in the client as ``tls.client_unconfigured``)."""
        if not self.url.startswith("https://"):
            return {}
        return {"tls": self.tls, "expect": (self.role, self.name)}


@dataclass
class Snapshot:
    """What was seen, per party; ``errors`` names what could not be read and why."""

    parties: list[Party]
    when: dt.datetime
    root_pem: str | None = None
    crl: x509.CertificateRevocationList | None = None
    up: dict[str, bool] = field(default_factory=dict)
    pems: dict[str, str] = field(default_factory=dict)
    keysets: list[dict[str, Any]] | None = None
    keysets_verified: bool = False
    issuer: dict[str, Any] | None = None
    opener_public: str | None = None
    merchants: dict[str, dict[str, Any]] = field(default_factory=dict)
    ttp: dict[str, Any] | None = None
    strikes: list[dict[str, Any]] | None = None
    ttp_stats: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def collect(
    parties: Sequence[Party],
    *,
    known_pems: Mapping[str, str] | None = None,
    root_pem: str | None = None,
    timeout: float = 3.0,
) -> Snapshot:
    """One pass over ``parties``; certificates in ``known_pems`` are not fetched again."""
    snap = Snapshot(list(parties), dt.datetime.now(dt.UTC), root_pem=root_pem)
    snap.pems.update(known_pems or {})
    for party in parties:
        snap.up[party.name] = _healthy(party, timeout)
    for party in parties:
        reader = _READERS.get(party.role)
        if reader is None or not snap.up[party.name]:
            continue
        try:
            reader(snap, party, timeout)
        except EcashError as exc:
            snap.errors[party.name] = f"{exc.code}: {exc.message}"
    return snap


def _healthy(party: Party, timeout: float) -> bool:
    from ecash_tpm.clients.base import ServiceClient

    try:
        with ServiceClient(party.url, timeout=timeout, **party.client_kwargs()) as client:
            answer = client.get_json("/healthz")
    except EcashError:
        return False
    return isinstance(answer, dict) and answer.get("status") == "ok"


def _central_bank(snap: Snapshot, party: Party, timeout: float) -> None:
    from ecash_tpm.clients.centralbank import CentralBankClient

    with CentralBankClient(party.url, timeout=timeout, **party.client_kwargs()) as client:
        if snap.root_pem is None:
            snap.root_pem = client.root_pem().decode("ascii")
        snap.crl = client.crl()


def _bank(snap: Snapshot, party: Party, timeout: float) -> None:
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.pki import cert_pem

    with BankClient(party.url, timeout=timeout, **party.client_kwargs()) as client:
        answer = client.keysets(central_bank_root=snap.root_pem)
    snap.pems.setdefault(party.name, cert_pem(answer.bank_cert))
    snap.keysets_verified = snap.root_pem is not None
    snap.keysets = [
        {
            "id": ks.hex_id,
            "value": ks.value,
            "currency": ks.currency,
            "withdraw_until": ks.withdraw_until,
            "deposit_until": ks.deposit_until,
            "variant": str(getattr(ks.variant, "name", ks.variant)),
        }
        for ks in answer.keysets
    ]


def _issuer(snap: Snapshot, party: Party, timeout: float) -> None:
    from ecash_tpm.clients.issuer import IssuerClient

    with IssuerClient(party.url, timeout=timeout, **party.client_kwargs()) as client:
        info = client.info()
    snap.issuer = {
        "epoch": info.epoch,
        "pcr_bank": info.pcr_selection.bank,
        "pcrs": list(info.pcr_selection.pcrs),
        "opener_public": b64u_encode(info.opener_public),
    }


def _supervision(snap: Snapshot, party: Party, timeout: float) -> None:
    from ecash_tpm.clients.supervision import SupervisionClient

    with SupervisionClient(party.url, timeout=timeout, **party.client_kwargs()) as client:
        snap.opener_public = b64u_encode(client.opener_public().encode())


def _merchant(snap: Snapshot, party: Party, timeout: float) -> None:
    from ecash_tpm.clients.merchant import MerchantClient

    with MerchantClient(party.url, timeout=timeout, **party.client_kwargs()) as client:
        info = client.info()
    snap.pems.setdefault(party.name, str(info["cert"]))
    snap.merchants[party.name] = {
        "merchant_id": info.get("merchant_id"),
        "currencies": info.get("currencies"),
    }


def _ttp(snap: Snapshot, party: Party, timeout: float) -> None:
    from ecash_tpm.clients.ttp import TtpClient

    with TtpClient(party.url, timeout=timeout, **party.client_kwargs()) as client:
        info = client.info()
        snap.pems.setdefault(party.name, str(info["cert"]))
        snap.ttp = {"ttp_id": info.get("ttp_id"), "dispute_window_s": info.get("dispute_window_s")}
        snap.strikes = client.strikes()
        snap.ttp_stats = client.stats()


_READERS: dict[str, Callable[[Snapshot, Party, float], None]] = {
    "centralbank": _central_bank,
    "bank": _bank,
    "issuer": _issuer,
    "supervision": _supervision,
    "merchant": _merchant,
    "ttp": _ttp,
}
