"""``<party> init`` for parties that are just a certified P-256 key (merchant, TTP).

Creates the key once (0600), writes its public key for the central bank, then takes the
certificate from a local CA directory or from files the operator got certified elsewhere, and
checks that it is the central bank's, for this role and name, and for this key.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecash_tpm.errors import ConfigError


@dataclass(frozen=True)
class PartyKeyInit:
    """What ``init`` did: where the key lives and whether a valid certificate is in place."""

    key_file: Path
    public_key_file: Path
    cert_file: Path
    certified: bool
    payload: dict[str, Any]

    def summary(self, label: str) -> list[str]:
        """Lines for people: where the key is, and the certificate or what is missing."""
        missing = "MISSING: get it certified (--ca-dir/--cert)"
        return [
            f"{label} {self.payload['name']} in {self.payload['data_dir']}",
            f"key          {self.key_file} (public key for the central bank: "
            f"{self.public_key_file})",
            f"certificate  {self.cert_file if self.certified else missing}",
        ]


def add_init_options(
    parser: argparse.ArgumentParser, *, role: str, default_name: str | None
) -> None:
    """The ``--name``, ``--ca-dir``, ``--cert``, ``--root`` options that init_party_key reads."""
    name_help = f"{role} id (certificate CN)"
    if default_name is None:
        parser.add_argument("--name", required=True, help=name_help)
    else:
        parser.add_argument("--name", default=default_name, help=name_help)
    parser.add_argument(
        "--ca-dir", default=None, help="certify with the central bank CA in this dir"
    )
    parser.add_argument("--cert", default=None, help="install this certificate (PEM) instead")
    parser.add_argument("--root", default=None, help="central bank root certificate (PEM)")


def init_party_key(settings: Any, args: argparse.Namespace, *, role: str) -> PartyKeyInit:
    """Key + certificate for ``settings.name`` in ``settings.data_dir`` (see module docstring).

    ``settings`` needs ``data_dir``, ``name``, ``resolved_key_file()``, ``resolved_root_cert()``
    and ``resolved_cert_file()``; ``args`` the ``--ca-dir``, ``--root`` and ``--cert`` options.
    """
    from ecash_tpm.crypto.signing import PartyKey, write_file_atomic
    from ecash_tpm.pki import cert_pem, load_certificate, verify_party_certificate

    data: Path = settings.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_file: Path = settings.resolved_key_file()
    key = PartyKey.load(key_file) if key_file.exists() else PartyKey.generate()
    if not key_file.exists():
        key.save(key_file)
    pub_file = data / f"{role}-key.pub.der"
    write_file_atomic(pub_file, key.public_key_bytes(), mode=0o644)
    root_file: Path = settings.resolved_root_cert()
    cert_file: Path = settings.resolved_cert_file()
    if args.ca_dir:
        from ecash_tpm.centralbank.ca import CentralBankCA

        with CentralBankCA.load(args.ca_dir) as ca:
            cert = ca.certify(role, settings.name, key.public_key)
            write_file_atomic(root_file, ca.root_pem(), mode=0o644)
        write_file_atomic(cert_file, cert_pem(cert).encode("ascii"), mode=0o644)
    else:
        if args.root:
            shutil.copyfile(args.root, root_file)
        if args.cert:
            write_file_atomic(
                cert_file, cert_pem(Path(args.cert).read_bytes()).encode("ascii"), mode=0o644
            )
    certified = cert_file.exists() and root_file.exists()
    if certified:
        got = verify_party_certificate(
            load_certificate(cert_file.read_bytes()),
            root_file.read_bytes(),
            role=role,
            name=settings.name,
        )
        if got.public_numbers() != key.public_key.public_numbers():
            raise ConfigError(f"the {role} certificate is for another key")
    payload = {
        "data_dir": str(data),
        "name": settings.name,
        "key_id": key.key_id(),
        "public_key": str(pub_file),
        "certified": certified,
    }
    return PartyKeyInit(key_file, pub_file, cert_file, certified, payload)
