"""The issuer's per-epoch credential secrets (x, y), kept in its data directory with mode 0600.

The bank is run by the same operator and checks every coin's credential with the secret of the
coin's epoch (designated verifier, DESIGN §5), so this module is the read API both use::

    keys = IssuerKeyStore.open(data_dir / "issuer-keys")
    secret = keys.secret_for_epoch(coin_epoch)        # IssuerSecret; issuer.unknown_epoch if none
    keys.current_epoch                                 # the epoch new credentials are issued for
    keys.public_info()                                 # {"epoch", "issuer_public": {"X", "Y"}}

Layout: one file per epoch, ``epoch-00000001.key`` holding ``x(32) || y(32)``. The current epoch
is the highest one present, so a rotation is a single atomic file creation (write to a temporary
file, then ``link`` it into place, which fails if another process created that epoch first).
Files readable by group or others are refused rather than used: a leaked (x, y) lets anyone mint
credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecash_tpm.crypto.groupsig import IssuerPublic, IssuerSecret
from ecash_tpm.crypto.signing import canonical_encode, write_file_atomic
from ecash_tpm.errors import EcashError
from ecash_tpm.issuer.errors import IssuerKeyError, IssuerKeyPermissionError, UnknownEpochError

_FILE_RE = re.compile(r"^epoch-(\d{8})\.key$")
MAX_EPOCH = 2**32 - 1


def _file_name(epoch: int) -> str:
    return f"epoch-{epoch:08d}.key"


def _cert_name(epoch: int) -> str:
    return f"epoch-{epoch:08d}.cert.json"


def _check_epoch(epoch: object) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise UnknownEpochError("epoch must be an integer in [0, 2^32)", detail={"epoch": epoch})
    return epoch


@dataclass(frozen=True)
class IssuerPublicInfo:
    """What the issuer publishes about one epoch key."""

    epoch: int
    issuer_public: IssuerPublic

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "issuer_public": self.issuer_public.to_dict()}


class IssuerKeyStore:
    """Per-epoch issuer secrets in one directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._cache: dict[int, IssuerSecret] = {}
        self._public: dict[int, IssuerPublic] = {}
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> IssuerKeyStore:
        """Open an existing store; ``issuer.key_invalid`` if it holds no epoch key."""
        store = cls(directory)
        if not store.epochs():
            raise IssuerKeyError(
                f"no issuer keys in {os.fspath(directory)!r} (run `ecash-tpm issuer init`)",
                detail={"dir": os.fspath(directory)},
            )
        return store

    @classmethod
    def create(cls, directory: str | os.PathLike[str], *, epoch: int = 1) -> IssuerKeyStore:
        """Open the store, creating the directory (0700) and the first epoch key if empty."""
        path = Path(directory)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise IssuerKeyError(f"cannot create {path}: {exc}") from exc
        store = cls(path)
        if not store.epochs():
            store._write_new(_check_epoch(epoch), IssuerSecret.generate())
        return store

    @property
    def directory(self) -> Path:
        return self._dir

    # -- read API -----------------------------------------------------------------------------

    def epochs(self) -> list[int]:
        """All epochs with a key, ascending."""
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise IssuerKeyError(f"cannot list {self._dir}: {exc}") from exc
        found = [int(m.group(1)) for n in names if (m := _FILE_RE.match(n))]
        return sorted(found)

    @property
    def current_epoch(self) -> int:
        """The newest epoch: credentials are issued for it (re-read, so rotations are seen)."""
        epochs = self.epochs()
        if not epochs:
            raise IssuerKeyError(f"no issuer keys in {self._dir}", detail={"dir": str(self._dir)})
        return epochs[-1]

    def secret_for_epoch(self, epoch: int) -> IssuerSecret:
        """The (x, y) of ``epoch``; ``issuer.unknown_epoch`` when there is none."""
        epoch = _check_epoch(epoch)
        with self._lock:
            cached = self._cache.get(epoch)
        if cached is not None:
            return cached
        path = self._dir / _file_name(epoch)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise UnknownEpochError(
                f"no issuer key for epoch {epoch}", detail={"epoch": epoch}
            ) from None
        except OSError as exc:
            raise IssuerKeyError(f"cannot open {path}: {exc}", detail={"path": str(path)}) from exc
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_IMODE(mode) & 0o077:
                raise IssuerKeyPermissionError(
                    f"{path} is accessible by group/others (mode {stat.S_IMODE(mode):04o}); "
                    "chmod 600 it",
                    detail={"path": str(path), "mode": f"{stat.S_IMODE(mode):04o}"},
                )
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read(1024)
        finally:
            os.close(fd)
        try:
            secret = IssuerSecret.from_bytes(data)
        except EcashError as exc:
            raise IssuerKeyError(
                f"{path} is not an issuer key: {exc.message}", detail={"path": str(path)}
            ) from None
        with self._lock:
            self._cache[epoch] = secret
        return secret

    def public_for_epoch(self, epoch: int) -> IssuerPublic:
        """X = x*G, Y = y*G and X2 = x*P2, Y2 = y*P2 of ``epoch`` (docs/protocol.md 3.6; the G2
        keys let anyone verify coins, §7.4). Computed once per epoch."""
        epoch = _check_epoch(epoch)
        with self._lock:
            cached = self._public.get(epoch)
        if cached is None:
            cached = self.secret_for_epoch(epoch).public
            with self._lock:
                self._public[epoch] = cached
        return cached

    def public_info(self, epoch: int | None = None) -> IssuerPublicInfo:
        """Public description of ``epoch`` (default: the current one)."""
        e = self.current_epoch if epoch is None else _check_epoch(epoch)
        return IssuerPublicInfo(e, self.public_for_epoch(e))

    # -- central-bank certificates of epoch keys (docs/protocol.md 3.6) ----------------------

    def save_epoch_certificate(self, epoch: int, doc: Mapping[str, Any]) -> None:
        """Keep the central bank's ``issuer-epoch-key`` for ``epoch``; it must name this
        epoch's key (the issuer hands it to every member with the credential)."""
        epoch = _check_epoch(epoch)
        body = doc.get("body") if isinstance(doc, Mapping) else None
        mine = {"epoch": epoch, **self.public_for_epoch(epoch).to_dict()}
        if not isinstance(body, Mapping) or any(body.get(k) != v for k, v in mine.items()):
            raise IssuerKeyError(
                "the certificate is not for this epoch's key", detail={"epoch": epoch}
            )
        write_file_atomic(self._dir / _cert_name(epoch), canonical_encode(dict(doc)), mode=0o644)

    def epoch_certificate(self, epoch: int) -> dict[str, Any] | None:
        """The stored central-bank certificate of ``epoch`` (None if there is none yet)."""
        path = self._dir / _cert_name(_check_epoch(epoch))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IssuerKeyError(f"cannot read {path}: {exc}") from exc
        doc: dict[str, Any] = json.loads(data)
        return doc

    # -- rotation -----------------------------------------------------------------------------

    def rotate(self) -> int:
        """Create the key of the next epoch and return it; old epochs stay for deposits."""
        new = self.current_epoch + 1
        self._write_new(_check_epoch(new), IssuerSecret.generate())
        return new

    def _write_new(self, epoch: int, secret: IssuerSecret) -> None:
        final = self._dir / _file_name(epoch)
        tmp = self._dir / f".{_file_name(epoch)}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secret.to_bytes())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, final)  # atomic and exclusive: never replaces an epoch's key
            except FileExistsError:
                raise IssuerKeyError(
                    f"epoch {epoch} already has a key", detail={"epoch": epoch}
                ) from None
        except OSError as exc:
            raise IssuerKeyError(f"cannot write {final}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        with contextlib.suppress(OSError):
            dir_fd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
