"""The opener secret h (Hop = h*G) in the supervision department's data directory.

``opener.key`` holds the 32-byte scalar with mode 0600 and is refused if group/others can read
it: whoever holds h can trace every payment. ``opener-public.txt`` holds Hop as base64url text;
it is what the issuer is configured with (``opener_public_file``) and publishes to wallets.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import OpenerSecret
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.errors import EcashError
from ecash_tpm.supervision.errors import OpenerKeyError

OPENER_KEY_FILE = "opener.key"
OPENER_PUBLIC_FILE = "opener-public.txt"


def create_opener_secret(path: str | os.PathLike[str]) -> OpenerSecret:
    """Generate h and write it (0600); refuses to replace an existing key."""
    target = Path(path)
    if target.exists():
        raise OpenerKeyError(f"{target} already exists; refusing to replace the opener key")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = OpenerSecret.generate()
    try:
        write_file_atomic(target, secret.to_bytes(), mode=0o600)
    except OSError as exc:
        raise OpenerKeyError(f"cannot write {target}: {exc}") from exc
    return secret


def load_opener_secret(path: str | os.PathLike[str]) -> OpenerSecret:
    """Read h, refusing a file that group or others may read."""
    target = Path(path)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
        data = target.read_bytes()
    except FileNotFoundError:
        raise OpenerKeyError(
            f"no opener key at {target} (run `ecash-tpm supervision init`)",
            detail={"path": str(target)},
        ) from None
    except OSError as exc:
        raise OpenerKeyError(f"cannot read {target}: {exc}") from exc
    if mode & 0o077:
        raise OpenerKeyError(
            f"{target} is accessible by group/others (mode {mode:04o}); chmod 600 it",
            detail={"path": str(target), "mode": f"{mode:04o}"},
        )
    try:
        return OpenerSecret.from_bytes(data)
    except EcashError as exc:
        raise OpenerKeyError(f"{target} is not an opener key: {exc.message}") from None


def write_opener_public(path: str | os.PathLike[str], hop: Point) -> None:
    """Publish Hop as base64url text (world-readable: it is public)."""
    write_file_atomic(Path(path), (b64u_encode(hop.encode()) + "\n").encode(), mode=0o644)


def read_opener_public(path: str | os.PathLike[str]) -> Point:
    try:
        return Point.decode(b64u_decode(Path(path).read_text(encoding="ascii").strip()))
    except (OSError, UnicodeDecodeError) as exc:
        raise OpenerKeyError(f"cannot read {path}: {exc}") from exc
    except EcashError as exc:
        raise OpenerKeyError(f"{path} does not hold a BN_P256 point: {exc.message}") from None
