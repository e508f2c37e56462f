"""Cheating merchants for the demo and the tests: key releases that withhold or falsify keys.

The merchant package only ships the honest
:class:`~ecash_tpm.merchant.catalogue.HonestKeyRelease`; nothing in its configuration can make
a shop cheat. To show the fair exchange at work (docs/protocol.md §16.5), the demo and the tests
inject one of these into the catalogue instead:

* ``no_key`` — no key to the customer, and the TTP's key request is refused (case 1);
* ``wrong_key`` — a random key to both (case 2);
* ``lost_key`` — no key to the customer, the right one to the TTP (a lost delivery).

In-process: ``create_merchant_app(settings, key_release=strategy("no_key"))`` or
``merchant.catalogue.key_release = NoKey()``. As its own process (what the demo's
:class:`~ecash_tpm.deploy.local.LocalDeployment` starts through its per-party command
override, see :func:`merchant_command`)::

    python -m ecash_tpm.demo.cheating --strategy no_key --config merchant-b.toml
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ecash_tpm.crypto.sealing import new_content_key
from ecash_tpm.errors import EcashError, RemoteError
from ecash_tpm.merchant.catalogue import CatalogueProduct, HonestKeyRelease, KeyRelease

__all__ = [
    "STRATEGIES",
    "KeyWithheldError",
    "LostKey",
    "NoKey",
    "WrongKey",
    "main",
    "merchant_command",
    "strategy",
]


class KeyWithheldError(RemoteError):
    """A ``no_key`` shop refuses the TTP's key request (what the TTP records in the dispute)."""

    code = "merchant.key_withheld"
    http_status = 503


class NoKey:
    """Case 1: keeps the key from the customer and from the TTP."""

    def to_customer(self, product: CatalogueProduct) -> bytes | None:
        return None

    def to_ttp(self, product: CatalogueProduct) -> bytes:
        raise KeyWithheldError("the merchant does not hand out the key")


class WrongKey:
    """Case 2: a fresh random key, to the customer and to the TTP alike."""

    def to_customer(self, product: CatalogueProduct) -> bytes | None:
        return new_content_key()

    def to_ttp(self, product: CatalogueProduct) -> bytes:
        return new_content_key()


class LostKey(HonestKeyRelease):
    """The delivery to the customer is lost; the TTP gets the right key (no strike)."""

    def to_customer(self, product: CatalogueProduct) -> bytes | None:
        return None


#: Strategy name -> factory (a name on the command line of :func:`main`).
STRATEGIES: dict[str, Callable[[], KeyRelease]] = {
    "none": HonestKeyRelease,
    "no_key": NoKey,
    "wrong_key": WrongKey,
    "lost_key": LostKey,
}


def strategy(name: str) -> KeyRelease:
    """A fresh key release for ``name`` (one of :data:`STRATEGIES`)."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}") from None


def merchant_command(name: str) -> list[str]:
    """``python -m`` arguments that run a merchant with strategy ``name`` (``--config FILE``
    to be appended), for ``LocalDeployment.commands``."""
    strategy(name)  # fail early on a typo
    return ["ecash_tpm.demo.cheating", "--strategy", name]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the merchant of ``--config`` with a cheating key release (blocking)."""
    from ecash_tpm.merchant.app import create_merchant_app
    from ecash_tpm.merchant.settings import MerchantSettings
    from ecash_tpm.service.server import serve
    from ecash_tpm.service.settings import load_settings

    parser = argparse.ArgumentParser(
        prog="python -m ecash_tpm.demo.cheating",
        description="DEMO AND TESTS ONLY: a merchant that withholds or falsifies product keys",
    )
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), required=True)
    parser.add_argument("--config", required=True, help="TOML configuration file ([merchant])")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(MerchantSettings, path=args.config)
        tls = settings.tls_files(settings.resolved_root_cert())  # as `merchant serve` does
        app = create_merchant_app(settings, key_release=strategy(args.strategy))
        serve(
            app,
            settings.host,
            settings.port,
            log_level=settings.log_level,
            tls=tls,
            healthz_port=settings.healthz_port,
        )
    except EcashError as exc:
        print(f"cheating merchant: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
