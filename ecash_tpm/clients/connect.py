"""How one party (or the wallet, or an operator's CLI) reaches another: TLS first, then talk.

Every client in :mod:`ecash_tpm.clients` takes ``tls=`` (an :class:`ssl.SSLContext` that
trusts only the central bank's root) and ``expect=(role, name)`` (the identity the server's
certificate must carry). :func:`link` builds both from what the caller knows, so the rule is in
one place:

- an ``https://`` URL gets a TLS 1.3 context rooted at the central bank (never the system
  store), checked against the CRL when one is configured, and the expected role and name;
  the handshake fails (``tls.untrusted``, ``tls.wrong_identity``, ``tls.expired``,
  ``tls.revoked``) before a single byte of the request (a password, a TOTP, join data, coins)
  is sent;
- a party that has its own TLS certificate presents it (mutual TLS): that is how the bank
  knows which merchant deposits, the supervision department which bank reports, ...;
- an ``http://`` URL is refused (``config.insecure_url``) unless the caller opted into plain
  HTTP (``insecure_http``, ``--insecure-http``): a typo must not silently downgrade a money
  service to cleartext.

Example (the merchant calling its bank)::

    conn = party_link(settings, settings.bank_url, role="bank", name="bank",
                      root=settings.resolved_root_cert())
    with BankClient(settings.bank_url, tls=conn.tls, expect=conn.expect) as bank: ...
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ecash_tpm.errors import ConfigError
from ecash_tpm.service.settings import ServiceSettings

__all__ = ["InsecureUrlError", "Link", "link", "own_tls_identity", "party_link"]


class InsecureUrlError(ConfigError):
    """A plain ``http://`` URL for another party while plain HTTP was not asked for."""

    code = "config.insecure_url"


@dataclass(frozen=True)
class Link:
    """What a client needs to reach one server: a TLS context and the identity to expect
    (both ``None`` for plain HTTP, which :func:`link` only allows on request)."""

    url: str
    tls: ssl.SSLContext | None
    expect: tuple[str, str] | None


def link(
    url: str,
    *,
    role: str,
    name: str,
    root: Path | None,
    crl: Path | None = None,
    client: tuple[Path, Path] | None = None,
    insecure: bool = False,
) -> Link:
    """The :class:`Link` to the ``role`` called ``name`` at ``url`` (see the module docstring).

    ``root`` is the central bank's root certificate (PEM file); ``client`` the caller's own
    TLS certificate and key for mutual TLS (``None``: the caller is not a party, e.g. a wallet).
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "http":
        if not insecure:
            raise InsecureUrlError(
                f"{url} is plain HTTP: use https:// (or --insecure-http for a local experiment)",
                detail={"url": url, "role": role},
            )
        return Link(url, None, None)
    if scheme != "https":
        raise ConfigError(f"{url} is not an http(s) URL", detail={"url": url, "role": role})
    if root is None or not Path(root).is_file():
        raise ConfigError(
            f"the central bank root certificate is needed to check the {role} at {url}",
            code="config.tls_root_missing",
            detail={"url": url, "role": role, "root": None if root is None else str(root)},
        )
    from ecash_tpm.service.tls import client_context

    if crl is not None and not Path(crl).is_file():  # configured: never silently unchecked
        raise ConfigError(
            f"the configured revocation list {crl} does not exist",
            code="config.tls_missing",
            detail={"crl_file": str(crl)},
        )
    context = client_context(Path(root), crl=crl, client=client)
    return Link(url, context, (role, name))


def own_tls_identity(settings: ServiceSettings) -> tuple[Path, Path] | None:
    """The caller's own TLS certificate and key, if ``cert renew`` made them."""
    cert = settings.tls_cert_file or settings.data_dir / "tls-cert.pem"
    key = settings.tls_key_file or settings.data_dir / "tls-key.pem"
    return (cert, key) if cert.is_file() and key.is_file() else None


def party_link(
    settings: ServiceSettings,
    url: str,
    *,
    role: str,
    name: str,
    root: Path | None,
    transport: object | None = None,
) -> Link:
    """:func:`link` for a party calling another: its CRL, its own certificate for mutual TLS,
    and its ``insecure_http`` choice. With an injected ``transport`` (an in-process app in
    tests) there is no network to secure: the link is plain."""
    if transport is not None:
        return Link(url, None, None)
    return link(
        url,
        role=role,
        name=name,
        root=root,
        crl=settings.crl_file,
        client=own_tls_identity(settings),
        insecure=settings.insecure_http,
    )
