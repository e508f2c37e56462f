"""``ecash-tpm supervision init|serve|open|lift-revocation|audit``: the supervision department.

``init --data DIR`` creates the opener secret h (``opener.key``, mode 0600), publishes Hop in
``opener-public.txt`` (give it to the issuer: ``issuer init --opener-public-file``) and creates
the party signing key ``supervision-key.pem`` for the central bank to certify
(``supervision-cert.pem``, role ``supervision``).

``open`` names the member behind a spend, offline from the local registry and key
(``--data``), or through a running department (``--url``, with ``--token`` if it requires one).
The spend is given as ``--c1/--c2`` (base64url points) or ``--spend FILE`` holding a JSON spend
``{coin, proof}`` (or just the proof). Every opening is logged with its ``--reason``.

``lift-revocation MEMBER --reason WHY [--issuer-url URL]`` signs a ``revocation-lift`` with the
department's key and posts it to the issuer: the revoked member's account and TPM may join
again (docs/protocol.md 13.1).

``audit`` checks a bank's database from outside the bank's code
(:mod:`ecash_tpm.supervision.audit`): ``--bank-db URL`` (read-only), the bank certificate and
central-bank root (``--bank-data DIR`` holding ``bank.crt`` and ``central-bank-root.pem``, or
``--bank-cert``/``--root``; the department's own ``central_bank_root`` setting wins over the
bank's copy), Hop (``--opener-public`` or ``opener-public.txt`` in ``--data``), the issuer's
epoch secrets (``--issuer-keys DIR``: the designated credential check) and, with
``--central-bank URL``, the bank's latest money-supply report. Without the secrets the coins'
credentials are checked publicly with pairings (docs/protocol.md §7.4) under the certified
epoch keys the audit can get: the root-signed ``issuer-epoch-key`` of each coin's epoch, fetched
when first needed from the bank (``--bank URL``, ``GET /v1/issuer-epochs/{epoch}``) or else the
central bank (``--central-bank URL``, ``GET /v1/issuer-epochs/{issuer}/{epoch}``) and verified
under the root; the output names the epochs checked with pairings and those that could not be
(no certificate, or one without X2, Y2). With neither, the credential check is skipped and the
report says so. Exit status:
0 clean, 2 violations found, 1 the audit could not run. With ``--json`` the report is one object
whose ``"ok"`` is the verdict (false when violations were found; no ``"error"`` then).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.cli.db_migrate import add_db_commands
from ecash_tpm.cli.output import emit, read_json
from ecash_tpm.cli.tls_certs import (
    add_cert_commands,
    add_insecure_http,
    add_workers,
    insecure_override,
    renew_summary,
    renew_via_central_bank,
    serve_options,
    workers_override,
)

if TYPE_CHECKING:
    from ecash_tpm.clients.epochs import CertifiedEpochKeys
    from ecash_tpm.crypto.groupsig import IssuerPublic


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from ecash_tpm.service.settings import load_settings
    from ecash_tpm.supervision.settings import SupervisionSettings

    values = {"data_dir": args.data, "insecure_http": insecure_override(args), **overrides}
    return load_settings(SupervisionSettings, path=args.config, overrides=values)


def _cmd_init(args: argparse.Namespace) -> int:
    from ecash_tpm.crypto.encoding import b64u_encode
    from ecash_tpm.crypto.signing import PartyKey
    from ecash_tpm.supervision.keys import (
        OPENER_PUBLIC_FILE,
        create_opener_secret,
        load_opener_secret,
        write_opener_public,
    )

    settings = _settings(args)
    data: Path = settings.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = settings.resolved_opener_key_file()
    created = not key_path.exists()
    opener = create_opener_secret(key_path) if created else load_opener_secret(key_path)
    public_path = data / OPENER_PUBLIC_FILE
    write_opener_public(public_path, opener.public)
    signing = settings.resolved_signing_key_file()
    if not signing.exists():
        PartyKey.generate().save(signing)
    party = PartyKey.load(signing)
    (data / "supervision-key.pub.der").write_bytes(party.public_key_bytes())
    hop = b64u_encode(opener.public.encode())
    emit(
        args,
        {"opener_public": hop, "opener_public_file": str(public_path), "created": created},
        f"opener key {'created' if created else 'kept'}: {key_path} (0600)\n"
        f"Hop = {hop}\n(published in {public_path}; signing key {signing})",
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ecash_tpm.service.server import serve
    from ecash_tpm.supervision.routes import create_supervision_app

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        issuer_url=args.issuer_url,
        insecure_http=insecure_override(args),
        workers=workers_override(args),
    )
    tls = serve_options(settings, settings.resolved_central_bank_root())
    serve(
        create_supervision_app(settings),
        settings.host,
        settings.port,
        log_level=settings.log_level,
        **tls,
    )
    return 0


def _cmd_cert_renew(args: argparse.Namespace) -> int:
    settings = _settings(args)
    done = renew_via_central_bank(
        args,
        settings,
        role="supervision",
        root=settings.resolved_central_bank_root(),
        signing_cert=settings.resolved_certificate_file(),
    )
    emit(args, done, renew_summary(done))
    return 0


def _ciphertext(args: argparse.Namespace) -> tuple[Any, Any]:
    from ecash_tpm.crypto.bn256 import Point
    from ecash_tpm.crypto.encoding import b64u_decode
    from ecash_tpm.crypto.groupsig import SpendProof
    from ecash_tpm.errors import InputError

    if args.spend:
        data = read_json(args.spend, "--spend")
        proof = data.get("proof", data) if isinstance(data, dict) else None
        if not isinstance(proof, dict):
            raise InputError(
                f"--spend {args.spend} must hold a spend {{coin, proof}} or a proof object",
                detail={"path": str(args.spend)},
            )
        p = SpendProof.from_dict(proof)
        return p.c1, p.c2
    if not (args.c1 and args.c2):
        raise InputError("give --spend FILE or both --c1 and --c2")
    return Point.decode(b64u_decode(args.c1)), Point.decode(b64u_decode(args.c2))


def _cmd_open(args: argparse.Namespace) -> int:
    c1, c2 = _ciphertext(args)
    if args.url:
        from ecash_tpm.clients.connect import party_link
        from ecash_tpm.clients.supervision import SupervisionClient

        settings = _settings(args)
        conn = party_link(
            settings,
            args.url,
            role="supervision",
            name=args.url_name,
            root=settings.resolved_central_bank_root(),
        )
        with SupervisionClient(
            args.url, token=args.token, tls=conn.tls, expect=conn.expect
        ) as client:
            result = client.open(c1, c2, args.reason).model_dump(mode="json")
    else:
        from ecash_tpm.crypto.signing import PartyKey
        from ecash_tpm.service.database import open_party_database
        from ecash_tpm.supervision.domain import SupervisionDepartment
        from ecash_tpm.supervision.keys import load_opener_secret
        from ecash_tpm.supervision.store import MIGRATIONS

        settings = _settings(args)
        with open_party_database(
            settings,
            MIGRATIONS,
            mode="existing",  # the registry the running department keeps; never a new one
            hint="the registry is made by `ecash-tpm supervision serve`",
        ) as db:
            dept = SupervisionDepartment(
                db,
                load_opener_secret(settings.resolved_opener_key_file()),
                signer=PartyKey.load(settings.resolved_signing_key_file()),
            )
            result = dept.open(c1, c2, reason=args.reason).to_dict()
    emit(
        args,
        result,
        f"member {result['member_id']} (account {result['account_id']}, epoch "
        f"{result['epoch']}); opening #{result['opening_id']}, proof e={result['proof']['e']}",
    )
    return 0


# --- audit (issue 5) ----------------------------------------------------------------------------


def _audit_root_path(args: argparse.Namespace, settings: Any) -> Path | None:
    """The trust anchor: ``--root``, the department's setting, the bank's copy."""
    bank_data = Path(args.bank_data) if args.bank_data else None
    root_path = Path(args.root) if args.root else None
    if root_path is None and settings.central_bank_root is not None:
        root_path = Path(settings.central_bank_root)
    if root_path is None and bank_data is not None:
        root_path = bank_data / "central-bank-root.pem"
    return root_path


def _audit_certificates(args: argparse.Namespace, settings: Any) -> tuple[bytes, bytes]:
    """Bank certificate and the trust anchor, in the order of preference of the docstring."""
    from ecash_tpm.errors import InputError

    bank_data = Path(args.bank_data) if args.bank_data else None
    cert_path = Path(args.bank_cert) if args.bank_cert else None
    if cert_path is None and bank_data is not None:
        cert_path = bank_data / "bank.crt"
    root_path = _audit_root_path(args, settings)
    if cert_path is None or root_path is None:
        raise InputError("give --bank-data DIR, or --bank-cert FILE and --root FILE")
    try:
        return cert_path.read_bytes(), root_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read a certificate: {exc}") from exc


def _audit_opener(args: argparse.Namespace, settings: Any) -> Any:
    from ecash_tpm.crypto.bn256 import Point
    from ecash_tpm.crypto.encoding import b64u_decode
    from ecash_tpm.errors import InputError
    from ecash_tpm.supervision.keys import OPENER_PUBLIC_FILE, read_opener_public

    if args.opener_public:
        return Point.decode(b64u_decode(args.opener_public))
    path = settings.data_dir / OPENER_PUBLIC_FILE
    if not path.exists():
        raise InputError(f"give --opener-public, or --data with {OPENER_PUBLIC_FILE}")
    return read_opener_public(path)


def _cmd_lift_revocation(args: argparse.Namespace) -> int:
    """Sign a ``revocation-lift`` and post it to the issuer (docs/protocol.md 13.1)."""
    import time

    from ecash_tpm.clients.connect import party_link
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.crypto.signing import PartyKey, sign_object
    from ecash_tpm.errors import ConfigError
    from ecash_tpm.protocol.join_auth import REVOCATION_LIFT_KIND, RevocationLift

    settings = _settings(args)
    url = args.issuer_url or settings.issuer_url
    if not url:
        raise ConfigError("pass --issuer-url (or set issuer_url): the lift goes to the issuer")
    lift = RevocationLift(args.member_id, args.reason, int(time.time()))
    body = RevocationLift.from_body(lift.to_body()).to_body()  # the reason's length checked
    key = PartyKey.load(settings.resolved_signing_key_file())
    doc = sign_object(key, REVOCATION_LIFT_KIND, body)
    cert = settings.resolved_certificate_file().read_text(encoding="ascii")
    conn = party_link(
        settings,
        url,
        role="issuer",
        name=settings.issuer_name,
        root=settings.resolved_central_bank_root(),
    )
    with IssuerClient(url, tls=conn.tls, expect=conn.expect) as issuer:
        record = issuer.lift(args.member_id, doc, cert)
    emit(
        args,
        record.model_dump(mode="json"),
        f"revocation of {record.member_id} lifted: its account and TPM may join again",
    )
    return 0


class _FetchedEpochKeys(Mapping[int, "IssuerPublic"]):
    """``{epoch: certified key}`` fetched when the audit first asks for an epoch (it reads only
    ``get``): the audit needs no list of epochs, and only the coins' epochs are fetched."""

    def __init__(self, keys: CertifiedEpochKeys, close: Callable[[], None]) -> None:
        self.source = keys
        self.close = close  # the HTTP client the keys come from
        self._seen: dict[int, IssuerPublic | None] = {}
        self._unknown: dict[int, str] = {}

    def __getitem__(self, epoch: int) -> IssuerPublic:
        from ecash_tpm.protocol.errors import UnknownEpochError

        if epoch not in self._seen:
            try:
                self._seen[epoch] = self.source(epoch)
            except UnknownEpochError as exc:  # unreachable/unverifiable (503) propagates: retry
                # §7.4: no certified key for a booked coin's epoch -- the audit flags its coins
                self._seen[epoch] = None
                self._unknown[epoch] = str(exc.detail.get("cause", exc.code))
        key = self._seen[epoch]
        if key is None:
            raise KeyError(epoch)
        return key

    def __iter__(self) -> Iterator[int]:
        return iter([e for e, k in self._seen.items() if k is not None])

    def __len__(self) -> int:
        return sum(1 for k in self._seen.values() if k is not None)

    def public(self) -> list[int]:
        """The epochs whose coins were checked with pairings (certified X2, Y2)."""
        return sorted(e for e, k in self._seen.items() if k is not None and k.has_g2)

    def not_public(self) -> dict[int, str]:
        """The epochs asked for whose coins could not be checked, with the reason."""
        out = {e: "issuer_epoch.no_g2" for e, k in self._seen.items() if k is not None}
        out |= {e: self.source.bank_only.get(e, "issuer_epoch.unavailable") for e in self._seen}
        out |= self._unknown
        return {e: r for e, r in sorted(out.items()) if e not in self.public()}


def _epoch_keys(args: argparse.Namespace, settings: Any, root: Path) -> _FetchedEpochKeys | None:
    """The certified epoch keys from the bank (``--bank``) or the central bank
    (``--central-bank``), fetched lazily (docs/protocol.md §3.6, §7.4); None without either."""
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.clients.connect import party_link
    from ecash_tpm.clients.epochs import CertifiedEpochKeys

    url = args.bank or args.central_bank
    if not url:
        return None
    role, name = ("bank", args.bank_name) if args.bank else ("centralbank", "centralbank")
    conn = party_link(settings, url, role=role, name=name, root=root)
    if args.bank:
        bank = BankClient(url, tls=conn.tls, expect=conn.expect)
        fetch: Callable[[int], Mapping[str, Any]] = bank.issuer_epoch
        close = bank.close
    else:
        central = CentralBankClient(url, tls=conn.tls, expect=conn.expect)
        issuer = settings.issuer_name
        close = central.close

        def fetch(epoch: int) -> Mapping[str, Any]:
            return central.issuer_epoch(issuer, epoch)

    keys = CertifiedEpochKeys(fetch, root.read_bytes(), issuer=settings.issuer_name)
    return _FetchedEpochKeys(keys, close)


def _credential_lines(report: Any, fetched: _FetchedEpochKeys | None) -> dict[str, Any]:
    """Say which epochs were checked with pairings (§7.4). When some were, the audit's generic
    "skipped" note (written before any key was fetched) gives way to one note per epoch left
    unchecked; when none was, that note stands (the epochs are named beside it)."""
    if fetched is None:
        return {}
    public, missing = fetched.public(), fetched.not_public()
    if public:
        report.skipped[:] = [s for s in report.skipped if s.get("check") != "coin.credential"]
        for epoch, reason in missing.items():
            report.skipped.append(
                {
                    "check": "coin.credential",
                    "reason": f"epoch {epoch}: no certified X2, Y2 ({reason}); its coins' "
                    "credentials were not checked",
                }
            )
    return {"epochs_public": public, "epochs_not_public": {str(e): r for e, r in missing.items()}}


def _cmd_audit(args: argparse.Namespace) -> int:
    from ecash_tpm.pki import load_certificate
    from ecash_tpm.supervision.audit import run_audit

    settings = _settings(args)
    cert_pem, root_pem = _audit_certificates(args, settings)
    secrets = None
    fetched = None
    if args.issuer_keys:
        from ecash_tpm.issuer.keys import IssuerKeyStore

        secrets = IssuerKeyStore.open(args.issuer_keys)
    else:  # §7.4: the public check under the certified epoch keys the audit can get
        fetched = _epoch_keys(args, settings, Path(_audit_root_path(args, settings) or "."))
    supply = None
    skipped: list[dict[str, str]] = []
    if args.central_bank:
        from cryptography.x509.oid import NameOID

        from ecash_tpm.clients.centralbank import CentralBankClient
        from ecash_tpm.service.errors import RemoteCallError

        cn = load_certificate(cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        bank_id = str(cn[0].value) if cn else None
        from ecash_tpm.clients.connect import party_link

        sup = _settings(args)
        conn = party_link(
            sup,
            args.central_bank,
            role="centralbank",
            name="centralbank",
            root=sup.resolved_central_bank_root(),
        )
        with CentralBankClient(args.central_bank, tls=conn.tls, expect=conn.expect) as client:
            try:
                supply = client.latest_supply_report(bank_id).model_dump(mode="json")
            except RemoteCallError as exc:
                if exc.code != "supply_report.not_found":
                    raise
                skipped.append(
                    {"check": "supply_report", "reason": "the bank has sent no supply report"}
                )
    try:
        report = run_audit(
            args.bank_db,
            bank_cert=cert_pem,
            central_bank_root=root_pem,
            opener_public=_audit_opener(args, settings),
            issuer_secrets=secrets,
            issuer_public=fetched,
            supply_report=supply,
        )
    finally:
        if fetched is not None:
            fetched.close()
    report.skipped.extend(skipped)
    pairings = _credential_lines(report, fetched)
    result = report.to_dict() | ({"credential_check": pairings} if pairings else {})
    del result["ok"]  # the report's own verdict: "ok" is false when violations were found
    text = report.summary()
    if pairings:
        epochs = ", ".join(str(e) for e in pairings["epochs_public"]) or "none"
        text += f"\ncredentials checked with pairings (7.4) for epochs: {epochs}"
        if pairings["epochs_not_public"]:
            left = ", ".join(f"{e} ({r})" for e, r in pairings["epochs_not_public"].items())
            text += f"\nno certified G2 keys for epochs: {left}"
    emit(args, result, text, ok=report.ok)
    return 0 if report.ok else 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help="supervision data directory")
    p.add_argument("--config", default=None, help="TOML configuration file ([supervision])")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``supervision`` and its sub-commands."""
    parser = subparsers.add_parser(
        "supervision", help="supervision department (opening)", description=__doc__
    )
    sub = parser.add_subparsers(dest="supervision_command", metavar="COMMAND", required=True)
    add_db_commands(sub, "supervision")

    p = sub.add_parser("init", help="create the opener key and signing key")
    _common(p)
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("serve", help="run the supervision HTTP API")
    _common(p)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--issuer-url", default=None, help="where revocations are requested")
    add_insecure_http(p)
    add_workers(p)
    p.set_defaults(func=_cmd_serve)
    add_cert_commands(sub, _common, _cmd_cert_renew)

    p = sub.add_parser("open", help="name the member behind a spend, with a proof")
    _common(p)
    p.add_argument("--spend", help="JSON file with a spend {coin, proof} or a proof")
    p.add_argument("--c1", help="c1 (base64url point)")
    p.add_argument("--c2", help="c2 (base64url point)")
    p.add_argument("--reason", required=True, help="why (logged with the opening)")
    p.add_argument("--url", help="open through a running supervision department")
    p.add_argument("--token", help="bearer token for --url")
    add_insecure_http(p)
    p.add_argument("--url-name", default="supervision", help="expected certificate name of --url")
    p.set_defaults(func=_cmd_open)

    p = sub.add_parser(
        "lift-revocation", help="let a revoked member's account and TPM join again (signed)"
    )
    _common(p)
    p.add_argument("member_id", help="the revoked member (m-...)")
    p.add_argument("--reason", required=True, help="why (signed into the lift, 1..200 chars)")
    p.add_argument("--issuer-url", default=None, help="the issuer (default: issuer_url setting)")
    add_insecure_http(p)
    p.set_defaults(func=_cmd_lift_revocation)

    p = sub.add_parser("audit", help="audit a bank's database from outside the bank")
    _common(p)
    p.add_argument("--bank-db", required=True, metavar="URL", help="the bank's database URL")
    add_insecure_http(p)
    p.add_argument("--bank-data", metavar="DIR", help="bank data dir (bank.crt, root copy)")
    p.add_argument("--bank-cert", metavar="FILE", help="the bank certificate (PEM)")
    p.add_argument("--root", metavar="FILE", help="central-bank root certificate (PEM)")
    p.add_argument("--opener-public", metavar="B64", help="Hop (default: from --data)")
    p.add_argument("--issuer-keys", metavar="DIR", help="issuer epoch keys (credential check)")
    p.add_argument("--central-bank", metavar="URL", help="compare with the latest supply report")
    p.add_argument(
        "--bank",
        metavar="URL",
        help="fetch the certified issuer epoch keys there (public credential check, 7.4)",
    )
    p.add_argument("--bank-name", default="bank", help="expected bank certificate CN")
    p.set_defaults(func=_cmd_audit)
