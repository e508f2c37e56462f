"""``wallet keysets``: the bank's keysets and the central-bank-certified list the wallet trusts.

docs/protocol.md 4.1 (issue 10, #7): the wallet withdraws only under keysets on the central
bank's list of the bank's keysets, the same list for every customer. This command shows which
list that is (its id = SHA-256 of the signed body, its sequence number and certification time),
so a customer can compare it with the list the central bank publishes
(``GET /v1/keyset-lists/{bank}``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ecash_tpm.cli.output import emit, money, when


def _cmd_keysets(args: argparse.Namespace) -> int:
    from ecash_tpm.cli.wallet_cmd import (
        _bank_client,
        _coin_root,
        _coin_settings,
        _now,
        _wallet_context,
    )
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.withdraw import fetch_keysets

    keysets: list[dict[str, Any]] = []
    with WalletStore.open(args.data, _now) as store:
        if not args.offline:
            cfg = _coin_settings(args, need_bank=True)
            ctx = _wallet_context(store, _coin_root(args), cfg)
            with _bank_client(args, cfg) as bank:
                # 4.1: refused unless every keyset is on the central bank's list (then kept)
                book = fetch_keysets(
                    bank, ctx.root, now=_now(), bank_name=ctx.bank_name, store=store
                )
            keysets = [
                {
                    "keyset_id": ks.hex_id,
                    "value": ks.value,
                    "currency": ks.currency,
                    "withdraw_until": ks.withdraw_until,
                    "deposit_until": ks.deposit_until,
                    "fees": ks.fees.as_fields(),  # docs/protocol.md 4.2
                }
                for ks in sorted(book.keysets.values(), key=lambda k: (k.currency, -k.value))
            ]
        trusted = store.trusted_keyset_lists()
    lines = [
        f"trusted keyset list of {t['bank']}: {t['list_id']} (#{t['sequence']}, certified "
        f"by the central bank {when(int(t['certified_at']))})"
        for t in trusted
    ] or ["no certified keyset list seen yet"]
    lines += [
        f"  {money(k['value'], k['currency'])}  {k['keyset_id']}  withdraw until "
        f"{when(k['withdraw_until'])}; fees withdraw/deposit/refresh/refund "
        + "/".join(money(f, k["currency"]) for f in k["fees"].values())
        for k in keysets
    ]
    emit(args, {"trusted_keyset_lists": trusted, "keysets": keysets}, "\n".join(lines))
    return 0


def register_keysets(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``wallet keysets [--offline]``."""
    from ecash_tpm.cli.wallet_cmd import add_tls_args

    p = sub.add_parser("keysets", help="the bank's keysets and the certified list trusted")
    p.add_argument("--data", type=Path, required=True, help="wallet data directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--bank", default=None, metavar="URL", help="bank base URL (remembered)")
    p.add_argument("--bank-name", default=None, help="expected bank certificate CN")
    p.add_argument("--root", default=None, metavar="PEM", help="central bank root (kept)")
    p.add_argument("--offline", action="store_true", help="only show the list trusted, ask no bank")
    add_tls_args(p)
    p.set_defaults(func=_cmd_keysets)
