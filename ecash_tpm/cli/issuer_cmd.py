"""``ecash-tpm issuer init|serve|members|revoke|rotate-epoch``: the group manager.

``init --data DIR`` creates what the issuer needs in its data directory: the epoch-1 credential
secret (``issuer-keys/``, mode 0600), the EK trust store (``ek-trust/``, from ``--trust`` files or
the hermetic CA of ``--swtpm-state``), the PCR policy (``pcr-policy.json``: ``--pcrs`` with
``--allow IDX=HEX`` golden values; all-zero values by default, which is what a swtpm without
firmware measurements reports), the party signing key (``issuer-key.pem``) to be certified by
the central bank as ``issuer-cert.pem``, and optionally the opener public key
(``opener-public.txt``). Existing files are kept, so ``init`` is safe to re-run.

Settings for ``serve`` come from ``--config FILE`` ([issuer] section), ``ECASH_TPM_ISSUER_*``
and the flags; ``members`` and ``revoke`` work on the database directly (operator commands).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ecash_tpm.cli.output import emit


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
    from ecash_tpm.cli.tpm_cmd import load_trust_store
    from ecash_tpm.crypto.signing import PartyKey
    from ecash_tpm.issuer.domain import parse_opener_public
    from ecash_tpm.issuer.keys import IssuerKeyStore
    from ecash_tpm.issuer.policy import PcrPolicy
    from ecash_tpm.issuer.trust import EkTrustStore

    settings = _settings(args)
    data: Path = settings.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = IssuerKeyStore.create(settings.resolved_key_dir())

    trust_dir = settings.resolved_trust_dir()
    trust_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    certs = []
    if args.swtpm_state:
        from ecash_tpm.swtpm import SwtpmInstance

        roots, inter = SwtpmInstance.load(args.swtpm_state).ca_certificates()
        certs += roots + inter
    if args.trust:
        roots, inter = load_trust_store(list(args.trust))
        certs += roots + inter
    installed = EkTrustStore.install(trust_dir, certs)
    store = EkTrustStore.load(trust_dir)

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

    info = keys.public_info().to_dict()
    payload = {
        "data_dir": str(data),
        "epoch": info["epoch"],
        "issuer_public": info["issuer_public"],
        "trust_roots": len(store.roots),
        "trust_intermediates": len(store.intermediates),
        "trust_installed": [str(p) for p in installed],
        "pcr_policy": str(policy_file),
        "signing_key_id": party_key.key_id(),
        "signing_public_key": str(pub_file),
        "opener_public_configured": opener_file.exists(),
    }
    lines = [
        f"issuer data dir   {data}",
        f"epoch             {info['epoch']} (secret in {keys.directory}, mode 0600)",
        f"EK trust store    {trust_dir}: {len(store.roots)} root(s), "
        f"{len(store.intermediates)} intermediate(s)",
        f"PCR policy        {policy_file} ({policy_note})",
        f"signing key       {key_file} (public key for the central bank: {pub_file})",
        f"opener public     {'configured' if opener_file.exists() else 'NOT configured'}",
    ]
    if not store.roots:
        lines.append("warning: the EK trust store is empty; every join will be refused")
    emit(args, payload, "\n".join(lines))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.routes import create_issuer_app
    from ecash_tpm.service.server import serve

    settings = _settings(args, host=args.host, port=args.port, supervision_url=args.supervision_url)
    if settings.pcr_tofu:
        print(
            "WARNING: PCR trust-on-first-use is ON: any platform state will be accepted",
            file=sys.stderr,
        )
    app = create_issuer_app(settings)
    serve(app, settings.host, settings.port, log_level=settings.log_level)
    return 0


def _open_db(args: argparse.Namespace) -> Any:
    from ecash_tpm.issuer.store import MIGRATIONS
    from ecash_tpm.storage import Database

    settings = _settings(args)
    db = Database.open(settings.database_url)
    db.migrate(MIGRATIONS, component="issuer")
    return db


def _cmd_members(args: argparse.Namespace) -> int:
    from ecash_tpm.issuer.domain import list_members

    with _open_db(args) as db:
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

    with _open_db(args) as db:
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
    p.set_defaults(func=_cmd_serve)

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
