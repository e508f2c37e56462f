"""``ecash-tpm issuer init|serve|members|revoke|rotate-epoch|trust``: the group manager.

``init --data DIR`` creates what the issuer needs in its data directory: the epoch-1 credential
secret (``issuer-keys/``, mode 0600), the EK trust store (``ek-trust/``, from ``--trust`` files or
the hermetic CA of ``--swtpm-state``), the PCR policy (``pcr-policy.json``: ``--pcrs`` with
``--allow IDX=HEX`` golden values; all-zero values by default, which is what a swtpm without
firmware measurements reports), the party signing key (``issuer-key.pem``) to be certified by
the central bank as ``issuer-cert.pem``, and optionally the opener public key
(``opener-public.txt``). Existing files are kept, so ``init`` is safe to re-run.

Settings for ``serve`` come from ``--config FILE`` ([issuer] section), ``ECASH_TPM_ISSUER_*``
and the flags; ``members`` and ``revoke`` work on the database directly (operator commands).

``trust list|add|remove|check`` look after the EK trust store: the manufacturer CAs shipped with
the package (unless ``trust_shipped = false``) plus the operator directory ``ek-trust/``.
``list`` shows every certificate (file, subject, SHA-256, usable or why not); ``add`` and
``remove`` change the operator directory (restart the issuer afterwards); ``check CERT``
verifies an EK certificate (PEM, DER or raw NV contents) and names the anchor it chains to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ecash_tpm.cli.db_migrate import add_db_commands
from ecash_tpm.cli.output import emit
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


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from ecash_tpm.issuer.settings import IssuerSettings
    from ecash_tpm.service.settings import load_settings

    values = {"data_dir": args.data, **overrides}
    return load_settings(IssuerSettings, path=args.config, overrides=values)


def _parse_allow(items: list[str]) -> dict[int, list[bytes]]:
    from ecash_tpm.errors import InputError

    out: dict[int, list[bytes]] = {}
    for item in items:
        idx, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError(item)
            digest = bytes.fromhex(value)
            if len(digest) != 32:
                raise ValueError(value)
            out.setdefault(int(idx), []).append(digest)
        except ValueError:
            raise InputError(f"--allow wants IDX=<64 hex digits>, got {item!r}") from None
    return out


def _cmd_init(args: argparse.Namespace) -> int:
    from ecash_tpm.crypto.signing import PartyKey
    from ecash_tpm.issuer.domain import parse_opener_public
    from ecash_tpm.issuer.keys import IssuerKeyStore
    from ecash_tpm.issuer.policy import PcrPolicy
    from ecash_tpm.issuer.trust import EkTrustStore, add_certificates

    settings = _settings(args)
    data: Path = settings.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = IssuerKeyStore.create(settings.resolved_key_dir())

    trust_dir = settings.resolved_trust_dir()
    trust_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    certs: list[Any] = []
    if args.swtpm_state:
        from ecash_tpm.swtpm import SwtpmInstance

        roots, inter = SwtpmInstance.load(args.swtpm_state).ca_certificates()
        certs += roots + inter
    installed = EkTrustStore.install(trust_dir, certs)
    installed += [p for _, p in add_certificates(trust_dir, _trust_files(args.trust or []))]
    store = EkTrustStore.from_settings(settings)
    own = [e for e in store.entries if e.origin == "operator"]
    own_anchors = sum(1 for e in own if e.usable)
    shipped_anchors = sum(1 for e in store.entries if e.origin == "shipped" and e.usable)

    policy_file = settings.resolved_policy_file()
    policy_note = "kept"
    if not policy_file.exists() or args.pcrs or args.allow:
        pcrs = [int(x) for x in args.pcrs.split(",")] if args.pcrs else None
        if args.allow:
            allowed = _parse_allow(args.allow)
            policy = PcrPolicy(pcrs or sorted(allowed), allowed)
        else:
            policy = PcrPolicy.default(pcrs) if pcrs else PcrPolicy.default()
        policy.save(policy_file)
        policy_note = "written"

    key_file = settings.resolved_signing_key_file()
    if not key_file.exists():
        PartyKey.generate().save(key_file)
    party_key = PartyKey.load(key_file)
    pub_file = data / "issuer-key.pub.der"
    pub_file.write_bytes(party_key.public_key_bytes())

    opener_file = data / "opener-public.txt"
    if args.opener_public or args.opener_public_file:
        text = args.opener_public or Path(args.opener_public_file).read_text(encoding="ascii")
        hop = parse_opener_public(text)
        from ecash_tpm.supervision.keys import write_opener_public

        write_opener_public(opener_file, hop)

    from ecash_tpm.issuer.store import MIGRATIONS
    from ecash_tpm.service.database import open_party_database

    # the member database too, so that read-only commands work before the first `serve`
    open_party_database(settings, MIGRATIONS, mode="create").close()

    info = keys.public_info().to_dict()
    payload = {
        "data_dir": str(data),
        "epoch": info["epoch"],
        "issuer_public": info["issuer_public"],
        "trust_roots": own_anchors,
        "trust_unusable": sum(1 for e in own if not e.usable),
        "trust_shipped": settings.trust_shipped,
        "trust_shipped_anchors": shipped_anchors,
        "trust_installed": [str(p) for p in installed],
        "pcr_policy": str(policy_file),
        "signing_key_id": party_key.key_id(),
        "signing_public_key": str(pub_file),
        "opener_public_configured": opener_file.exists(),
    }
    lines = [
        f"issuer data dir   {data}",
        f"epoch             {info['epoch']} (secret in {keys.directory}, mode 0600)",
        f"EK trust store    {trust_dir}: {own_anchors} anchor(s)"
        + (f", {len(own) - own_anchors} unusable" if len(own) > own_anchors else "")
        + (
            f"; plus {shipped_anchors} shipped manufacturer CA(s)"
            if settings.trust_shipped
            else "; shipped manufacturer CAs off"
        ),
        f"PCR policy        {policy_file} ({policy_note})",
        f"signing key       {key_file} (public key for the central bank: {pub_file})",
        f"opener public     {'configured' if opener_file.exists() else 'NOT configured'}",
    ]
    if not store.roots:
        lines.append("warning: the EK trust store is empty; every join will be refused")
    lines += [
        f"warning: not using {e.status.source}: {e.status.reason}" for e in own if not e.usable
    ]
    emit(args, payload, "\n".join(lines))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.routes import create_issuer_app
    from ecash_tpm.service.server import serve

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        supervision_url=args.supervision_url,
        insecure_http=insecure_override(args),
        workers=workers_override(args),
    )
    tls = serve_options(settings, settings.resolved_central_bank_root())
    if settings.pcr_tofu:
        print(
            "WARNING: PCR trust-on-first-use is ON: any platform state will be accepted",
            file=sys.stderr,
        )
    app = create_issuer_app(settings)
    serve(app, settings.host, settings.port, log_level=settings.log_level, **tls)
    return 0


def _cmd_cert_renew(args: argparse.Namespace) -> int:
    settings = _settings(args)
    done = renew_via_central_bank(
        args,
        settings,
        role="issuer",
        root=settings.resolved_central_bank_root(),
        signing_cert=settings.resolved_certificate_file(),
    )
    emit(args, done, renew_summary(done))
    return 0


def _open_db(args: argparse.Namespace, *, read_only: bool) -> Any:
    """The issuer's database as the running issuer made it; never a new one (a missing or
    schema-less database is an error, not an empty member list)."""
    from ecash_tpm.issuer.store import MIGRATIONS
    from ecash_tpm.service.database import open_party_database

    return open_party_database(
        _settings(args),
        MIGRATIONS,
        mode="read" if read_only else "existing",
        hint="the issuer's database is made by `ecash-tpm issuer init`",
    )


def _cmd_members(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.domain import list_members

    with _open_db(args, read_only=True) as db:
        members = list_members(db, status=args.status, account_id=args.account)
    rows = [m.model_dump(mode="json") for m in members]
    text = "\n".join(
        f"{m.member_id}  {m.status:<8} epoch {m.epoch:<4} account {m.account_id}  "
        f"EK {m.ek_fingerprint[:16]}"
        for m in members
    )
    emit(args, {"members": rows}, text or "no members")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.domain import revoke_member

    with _open_db(args, read_only=False) as db:
        record = revoke_member(db, args.member_id, reason=args.reason)
    emit(
        args,
        {"member": record.model_dump(mode="json")},
        f"{record.member_id} is {record.status} ({record.revocation_reason})",
    )
    return 0


def _cmd_rotate(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.keys import IssuerKeyStore

    keys = IssuerKeyStore.open(_settings(args).resolved_key_dir())
    epoch = keys.rotate()
    emit(args, keys.public_info(epoch).to_dict(), f"new current epoch {epoch}")
    return 0


def _cmd_epoch_certificate(args: argparse.Namespace) -> int:
    """Store the central bank's ``issuer-epoch-key`` (docs/protocol.md 3.6) next to the key."""
    from ecash_tpm.cli.output import read_json
    from ecash_tpm.errors import InputError
    from ecash_tpm.issuer.keys import IssuerKeyStore

    doc = read_json(args.file, "certificate file")
    body = doc.get("body") if isinstance(doc, dict) else None
    epoch = body.get("epoch") if isinstance(body, dict) else None
    if not isinstance(doc, dict) or not isinstance(epoch, int):
        raise InputError("not an issuer-epoch-key", code="cli.bad_input")
    IssuerKeyStore.open(_settings(args).resolved_key_dir()).save_epoch_certificate(epoch, doc)
    emit(args, {"epoch": epoch}, f"epoch {epoch}: central-bank certificate stored")
    return 0


# -- EK trust store ------------------------------------------------------------------------------


def _trust_files(paths: list[str]) -> list[tuple[str, bytes]]:
    """(name, bytes) of the certificate files named on the command line.

    A directory gives its certificate files; there ``*.pem`` files without a CERTIFICATE block
    (keys, as a CA directory holds them) are skipped.
    """
    from ecash_tpm.attest.certparse import is_pem
    from ecash_tpm.attest.ek_anchors import CERT_SUFFIXES
    from ecash_tpm.errors import InputError

    out: list[tuple[str, bytes]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [
                (str(f), f.read_bytes())
                for f in sorted(p.iterdir())
                if f.is_file() and f.suffix.lower() in CERT_SUFFIXES
            ]
            found = [(n, d) for n, d in found if is_pem(d) or not n.lower().endswith(".pem")]
            if not found:
                raise InputError(f"no certificate files in {p}", detail={"path": str(p)})
            out += found
        elif p.is_file():
            out.append((str(p), p.read_bytes()))
        else:
            raise InputError(f"trust path {p} does not exist", detail={"path": str(p)})
    return out


def _trust_store(args: argparse.Namespace) -> Any:
    from ecash_tpm.issuer.trust import EkTrustStore

    return EkTrustStore.from_settings(_settings(args), missing_ok=True)


def _entry_text(e: Any) -> str:
    s = e.status
    where = Path(s.source).name if e.origin == "shipped" else s.source
    if s.index:
        where += f"#{s.index}"
    mark = "ok" if e.usable else "--"
    line = f"[{mark}] {e.origin:<8} {where}  {s.subject}\n     sha256 {s.fingerprint or '-'}"
    return line if e.usable else f"{line}\n     not used: {s.reason}"


def _cmd_trust_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _trust_store(args)
    entries = [e for e in store.entries if not (args.unusable and e.usable)]
    usable = sum(1 for e in store.entries if e.usable)
    header = (
        f"EK trust store: {len(store.roots)} anchor(s) from {usable} usable certificate(s), "
        f"{len(store.entries) - usable} not used; shipped store "
        f"{'on' if settings.trust_shipped else 'off'}; operator directory "
        f"{settings.resolved_trust_dir()}"
    )
    payload = {
        "trust_dir": str(settings.resolved_trust_dir()),
        "trust_shipped": settings.trust_shipped,
        "anchors": len(store.roots),
        "certificates": [e.to_dict() for e in entries],
    }
    emit(args, payload, lambda: "\n".join([header, *(_entry_text(e) for e in entries)]))
    return 0


def _cmd_trust_add(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.trust import add_certificates

    trust_dir = _settings(args).resolved_trust_dir()
    added = add_certificates(trust_dir, _trust_files(args.paths), force=args.force)
    rows = [{**s.to_dict(), "installed": str(p)} for s, p in added]
    text = "\n".join(
        f"added {p.name}  {s.subject}  sha256 {s.fingerprint}"
        + ("" if s.usable else f"  (not usable: {s.reason})")
        for s, p in added
    )
    emit(
        args,
        {"trust_dir": str(trust_dir), "added": rows},
        f"{text}\nrestart the issuer to use them",
    )
    return 0


def _cmd_trust_remove(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.trust import remove_certificates

    trust_dir = _settings(args).resolved_trust_dir()
    removed = []
    for selector in args.selectors:
        removed += remove_certificates(_trust_store(args), trust_dir, selector)
    rows = [e.to_dict() for e in removed]
    text = "\n".join(f"removed {e.status.source}  {e.status.subject}" for e in removed)
    emit(args, {"trust_dir": str(trust_dir), "removed": rows}, text + "\nrestart the issuer")
    return 0


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def _parse_at(value: str | None) -> Any:
    import datetime as dt

    from ecash_tpm.errors import InputError

    if value is None:
        return _now()
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--at wants an ISO 8601 time, got {value!r}", detail={"at": value}
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _cert_facts(store: Any, cert: Any) -> dict[str, Any]:
    entry = store.entry_for(cert)
    return {
        "subject": cert.subject_text,
        "issuer": cert.issuer_text,
        "sha256": cert.fingerprint,
        "not_after": cert.certificate.not_valid_after_utc.isoformat(),
        "origin": entry.origin if entry else None,
        "source": entry.status.source if entry else None,
    }


def _cmd_trust_check(args: argparse.Namespace) -> int:
    from ecash_tpm.attest.ek import parse_ek_certificate

    data = Path(args.cert).read_bytes()
    now = _parse_at(args.at)
    store = _trust_store(args)
    leaf = parse_ek_certificate(data)
    chain = store.check(leaf, now=now)
    path = [_cert_facts(store, c) for c in chain.path]
    anchor = _cert_facts(store, chain.anchor)
    payload = {
        "valid": True,
        "checked_at": now.isoformat(),
        "ek": {
            "subject": leaf.subject_text,
            "issuer": leaf.issuer_text,
            "sha256": leaf.fingerprint,
            "not_after": leaf.certificate.not_valid_after_utc.isoformat(),
        },
        "path": path,
        "anchor": anchor,
    }
    where = f"{anchor['origin']} {anchor['source']}" if anchor["origin"] else "the EK itself"
    lines = [
        f"EK certificate  {leaf.subject_text}  (issuer {leaf.issuer_text})",
        f"                sha256 {leaf.fingerprint}",
        *(f"  signed by     {c['subject']}" for c in path),
        f"anchor          {anchor['subject']}  ({where})",
        f"                sha256 {anchor['sha256']}",
        f"result          chain valid at {now.isoformat()}",
    ]
    emit(args, payload, "\n".join(lines))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help="issuer data directory")
    p.add_argument("--config", default=None, help="TOML configuration file ([issuer] section)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``issuer`` and its sub-commands."""
    parser = subparsers.add_parser(
        "issuer", help="group manager (attested join)", description=__doc__
    )
    sub = parser.add_subparsers(dest="issuer_command", metavar="COMMAND", required=True)
    add_db_commands(sub, "issuer")

    p = sub.add_parser("init", help="create keys, trust store, PCR policy in the data dir")
    _common(p)
    p.add_argument("--trust", action="append", metavar="PATH", help="EK CA file or directory")
    p.add_argument("--swtpm-state", metavar="DIR", help="trust this hermetic swtpm's CA")
    p.add_argument("--pcrs", help="PCR selection, e.g. 0,1,2,3,7 (default)")
    p.add_argument("--allow", action="append", metavar="IDX=HEX", help="golden PCR value")
    p.add_argument("--opener-public", help="Hop (base64url) from the supervision department")
    p.add_argument("--opener-public-file", help="file holding Hop (opener-public.txt)")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("serve", help="run the issuer HTTP API")
    _common(p)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--supervision-url", default=None, help="where member T0s are registered")
    add_insecure_http(p)
    add_workers(p)
    p.set_defaults(func=_cmd_serve)
    add_cert_commands(sub, _common, _cmd_cert_renew)

    p = sub.add_parser("members", help="list members")
    _common(p)
    p.add_argument("--status", choices=["active", "revoked"], default=None)
    p.add_argument("--account", default=None)
    p.set_defaults(func=_cmd_members)

    p = sub.add_parser("revoke", help="revoke a member (operator decision)")
    _common(p)
    p.add_argument("member_id")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=_cmd_revoke)

    p = sub.add_parser("rotate-epoch", help="start a new credential epoch")
    _common(p)
    p.set_defaults(func=_cmd_rotate)

    p = sub.add_parser(
        "epoch-certificate", help="store the central bank's certificate of an epoch key"
    )
    _common(p)
    p.add_argument("file", help="`centralbank certify-issuer-epoch --out` file")
    p.set_defaults(func=_cmd_epoch_certificate)

    p = sub.add_parser(
        "trust",
        help="EK trust store: list, add, remove, check",
        description="The EK trust store: the manufacturer CAs shipped with ecash-tpm (unless "
        "[issuer] trust_shipped = false) plus the operator directory (trust_dir, default "
        "<data>/ek-trust). Restart the issuer after add/remove.",
    )
    tsub = p.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    t = tsub.add_parser("list", help="every certificate: file, subject, SHA-256, usable or why not")
    _common(t)
    t.add_argument("--unusable", action="store_true", help="only the certificates not used")
    t.set_defaults(func=_cmd_trust_list)
    t = tsub.add_parser("add", help="copy CA certificates into the operator directory")
    _common(t)
    t.add_argument("paths", nargs="+", metavar="PATH", help="PEM/DER file or directory")
    t.add_argument("--force", action="store_true", help="add even if not usable today")
    t.set_defaults(func=_cmd_trust_add)
    t = tsub.add_parser("remove", help="remove operator certificates (file name or SHA-256)")
    _common(t)
    t.add_argument("selectors", nargs="+", metavar="FILE|SHA256", help="file name or fingerprint")
    t.set_defaults(func=_cmd_trust_remove)
    t = tsub.add_parser("check", help="verify an EK certificate against the store")
    _common(t)
    t.add_argument("cert", metavar="CERT", help="EK certificate: PEM, DER or raw NV contents")
    t.add_argument("--at", default=None, help="check at this ISO 8601 time (default: now)")
    t.set_defaults(func=_cmd_trust_check)
