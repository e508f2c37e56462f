"""Denomination keysets: one RSA blind-signing key per value and validity window (DESIGN §5).

A keyset is published as a descriptor signed by the bank (kind ``bank-keyset``)::

    {keyset_id, value, currency, withdraw_from, withdraw_until, deposit_until,
     public_key (SPKI DER), variant, fee_withdraw, fee_deposit, fee_refresh, fee_refund}
    keyset_id = SHA-256(canonical_encode(descriptor without keyset_id))[:16]

so a wallet or merchant can check that the id commits to the key and the windows. Rotation
makes new keys for a new window; old keysets keep their deposit window, so coins withdrawn
earlier stay spendable until ``deposit_until`` (rotation never strands a wallet's coins).

Private keys live in files, not in the database: ``<keys_dir>/<keyset_id hex>.pem``, unencrypted
PKCS#8, mode 0600, directory 0700 (the same policy as party keys). Database backups and
PostgreSQL replicas therefore never carry signing keys; a multi-node deployment must give each
bank node a copy of the key directory. Keys are written before their row is committed, so a
crash can leave an unused key file but never a keyset row without its key.

A rotation is all-or-nothing: every key of it is generated and written first, then all rows
are inserted in one transaction. Interrupted (Ctrl-C during ``bank init`` with 13 slow RSA
keys) it records no keyset and removes the key files it wrote, instead of leaving a bank with
2 of 13 denominations.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ecash_tpm.bank.errors import UNKNOWN_KEYSET
from ecash_tpm.bank.store import keysets as rows
from ecash_tpm.bank.store.keysets import KeysetRow
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import (
    PartyKey,
    canonical_encode,
    sign_object,
    verify_object,
    write_file_atomic,
)
from ecash_tpm.errors import ConfigError, EcashError, InputError, StorageError
from ecash_tpm.progress import ProgressCallback, silent
from ecash_tpm.protocol.coins import check_currency
from ecash_tpm.protocol.errors import UnknownKeysetError
from ecash_tpm.protocol.keysets import KEYSET_DESCRIPTOR_KIND, Fees, Keyset, keyset_id_for, spki
from ecash_tpm.storage import Database, Transaction

logger = logging.getLogger("ecash_tpm.bank")

__all__ = ["Keyset", "KeysetStore", "keyset_id_for"]

KeyGen = Callable[[int], rsa.RSAPrivateKey]
#: The central bank's certified list of this bank's keysets, in the keys directory.
KEYSET_LIST_FILE = "keyset-list.json"


@dataclass(frozen=True)
class _Prepared:
    """A keyset whose key file is written but whose row is not yet committed."""

    keyset: Keyset
    private_key: rsa.RSAPrivateKey
    key_file: str
    descriptor_json: str


def _descriptor_to_keyset(descriptor: str) -> Keyset:
    doc = json.loads(descriptor)
    return Keyset.from_descriptor(doc["body"])


class KeysetStore:
    """Creates, rotates, lists and loads keysets; caches parsed keys (rows never change)."""

    def __init__(
        self,
        db: Database,
        keys_dir: Path,
        bank_key: PartyKey,
        *,
        keygen: KeyGen = blindrsa.generate_key,
        signer_hint: str | None = None,
    ) -> None:
        self._db = db
        self._keys_dir = Path(keys_dir)
        self._bank_key = bank_key
        self._keygen = keygen
        self._signer_hint = signer_hint
        self._lock = threading.Lock()
        self._public: dict[bytes, Keyset] = {}
        self._private: dict[bytes, rsa.RSAPrivateKey] = {}

    # --- creation -------------------------------------------------------------------------

    def create(
        self,
        *,
        value: int,
        currency: str,
        withdraw_from: int,
        withdraw_until: int,
        deposit_until: int,
        now: int,
        bits: int = 2048,
        variant: blindrsa.Variant = blindrsa.DEFAULT_VARIANT,
        fees: Fees | None = None,
    ) -> Keyset:
        """Generate a key, write it (0600), sign the descriptor and record the keyset."""
        spec = {
            "value": value,
            "withdraw_from": withdraw_from,
            "withdraw_until": withdraw_until,
            "deposit_until": deposit_until,
            "fees": fees or Fees(),
        }
        return self._create_all([spec], currency=currency, now=now, bits=bits, variant=variant)[0]

    def _prepare(
        self,
        *,
        value: int,
        currency: str,
        withdraw_from: int,
        withdraw_until: int,
        deposit_until: int,
        bits: int,
        variant: blindrsa.Variant,
        fees: Fees,
    ) -> _Prepared:
        """Generate the key, write it (0600) and sign the descriptor; no row yet."""
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError("denomination value must be a positive integer")
        if not withdraw_from < withdraw_until <= deposit_until:
            raise InputError("need withdraw_from < withdraw_until <= deposit_until")
        if not variant.randomized:
            raise InputError("keysets use a randomized RSABSSA variant (coins carry a prefix)")
        private_key = self._keygen(bits)
        body = {
            "value": value,
            "currency": check_currency(currency),
            "withdraw_from": withdraw_from,
            "withdraw_until": withdraw_until,
            "deposit_until": deposit_until,
            "public_key": b64u_encode(spki(private_key.public_key())),
            "variant": variant.name,
            **fees.as_fields(),  # docs/protocol.md 4.2
        }
        keyset = Keyset.from_descriptor({**body, "keyset_id": b64u_encode(keyset_id_for(body))})
        key_file = keyset.hex_id + ".pem"
        self._write_key(key_file, private_key)
        signed = sign_object(
            self._bank_key, KEYSET_DESCRIPTOR_KIND, keyset.descriptor(), signer=self._signer_hint
        )
        return _Prepared(keyset, private_key, key_file, json.dumps(signed, sort_keys=True))

    def _create_all(
        self,
        specs: Sequence[dict[str, Any]],
        *,
        currency: str,
        now: int,
        bits: int,
        variant: blindrsa.Variant = blindrsa.DEFAULT_VARIANT,
        progress: ProgressCallback | None = None,
        only_missing: bool = False,
    ) -> list[Keyset]:
        """Prepare every keyset of ``specs``, then record all of them in one transaction.

        On any failure or interruption nothing is recorded, and the key files written for
        keysets whose row is not in the database are removed again. ``only_missing``: under a
        database-wide lock, record only denominations that still have no keyset open for
        withdrawal at ``now`` (several workers starting at once create each keyset once).
        """
        say = progress or silent
        prepared: list[_Prepared] = []
        everything = prepared
        try:
            say(f"generating RSA-{bits} keys", 0, len(specs))
            for spec in specs:
                prepared.append(
                    self._prepare(**spec, currency=currency, bits=bits, variant=variant)
                )
                say(f"generating RSA-{bits} keys", len(prepared), len(specs))
            # READ COMMITTED: the re-check after the lock sees what another worker committed
            isolation = "read_committed" if only_missing else "serializable"
            with self._db.transaction(isolation=isolation) as tx:
                if only_missing:
                    rows.lock_keyset_creation(tx)
                    taken = rows.open_values(tx, currency, now)
                    prepared = [p for p in prepared if p.keyset.value not in taken]
                for item in prepared:
                    rows.insert_keyset(
                        tx,
                        item.keyset,
                        descriptor_json=item.descriptor_json,
                        key_file_name=item.key_file,
                        now=now,
                    )
        except BaseException:
            self.discard_unrecorded_keys([item.key_file for item in prepared])
            raise
        finally:
            written = [item.key_file for item in everything]
            if len(prepared) < len(written):  # only_missing skipped some: their keys go
                self.discard_unrecorded_keys(written)
        with self._lock:
            for item in prepared:
                self._public[item.keyset.keyset_id] = item.keyset
                self._private[item.keyset.keyset_id] = item.private_key
        return [item.keyset for item in prepared]

    def discard_unrecorded_keys(self, key_files: Sequence[str]) -> list[str]:
        """Delete those of ``key_files`` (names in the key directory) that no keyset row names;
        returns the names deleted. For keys an interrupted rotation wrote: the database is
        asked (an interruption may come after the commit, and a recorded keyset must never
        lose its key). Never call it with keys another database may hold."""
        if not key_files:
            return []
        try:
            with self._db.read() as tx:
                recorded = set(rows.key_files(tx, list(key_files)))
        except EcashError:
            logger.warning("cannot tell which new keyset keys were recorded; keeping them all")
            return []
        removed = [name for name in key_files if name not in recorded]
        for name in removed:
            (self._keys_dir / name).unlink(missing_ok=True)
        return removed

    def rotate(
        self,
        *,
        denominations: Sequence[int],
        currency: str,
        now: int,
        withdraw_period_s: int,
        deposit_period_s: int,
        start: int | None = None,
        bits: int = 2048,
        progress: ProgressCallback | None = None,
        only_missing: bool = False,
        fees: Mapping[int, Fees] | None = None,
    ) -> list[Keyset]:
        """New keysets for every denomination for the window starting at ``start`` (now).

        Existing keysets are untouched: their signed windows stay as published, so coins
        withdrawn under them remain depositable until their ``deposit_until``. ``progress``
        hears of every RSA key generated. All or nothing: the keysets are recorded together
        once every key exists. ``fees``: per denomination value (others: zero fees, §4.2).
        """
        if not denominations or len(set(denominations)) != len(denominations):
            raise InputError("denominations must be a non-empty list of distinct values")
        if withdraw_period_s <= 0 or deposit_period_s < 0:
            raise InputError("withdraw period must be positive, deposit period non-negative")
        begin = now if start is None else start
        specs = [
            {
                "value": value,
                "withdraw_from": begin,
                "withdraw_until": begin + withdraw_period_s,
                "deposit_until": begin + withdraw_period_s + deposit_period_s,
                "fees": (fees or {}).get(value, Fees()),
            }
            for value in sorted(denominations)
        ]
        return self._create_all(
            specs,
            currency=currency,
            now=now,
            bits=bits,
            progress=progress,
            only_missing=only_missing,
        )

    def _write_key(self, file_name: str, private_key: rsa.RSAPrivateKey) -> None:
        try:
            self._keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._keys_dir, 0o700)
            pem = private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_file_atomic(self._keys_dir / file_name, pem, mode=0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot write keyset key to {self._keys_dir}: {exc}",
                detail={"keys_dir": str(self._keys_dir)},
            ) from exc

    # --- lookup ---------------------------------------------------------------------------

    def get(self, keyset_id: bytes, tx: Transaction | None = None) -> Keyset:
        """The keyset with this id; :class:`UnknownKeysetError` if the bank never made it."""
        with self._lock:
            cached = self._public.get(keyset_id)
        if cached is not None:
            return cached
        if tx is not None:
            descriptor = rows.descriptor(tx, keyset_id)
        else:
            with self._db.read() as rtx:
                descriptor = rows.descriptor(rtx, keyset_id)
        if descriptor is None:
            raise UnknownKeysetError(
                "no keyset with this id",
                code=UNKNOWN_KEYSET,
                http_status=404,
                detail={"keyset_id": b64u_encode(keyset_id)},
            )
        keyset = _descriptor_to_keyset(descriptor)
        with self._lock:
            self._public[keyset_id] = keyset
        return keyset

    def signed_descriptor(self, keyset_id: bytes) -> dict[str, Any] | None:
        """The bank-signed descriptor of a keyset as stored (carried in spend transcripts so
        the supervision department can check a coin's blind signature, protocol.md 12.1)."""
        with self._db.read() as tx:
            descriptor = rows.descriptor(tx, keyset_id)
        if descriptor is None:
            return None
        doc: dict[str, Any] = json.loads(descriptor)
        return doc

    def private_key(self, keyset_id: bytes) -> rsa.RSAPrivateKey:
        """Load (once) the signing key of a keyset and check it matches the published key."""
        with self._lock:
            cached = self._private.get(keyset_id)
        if cached is not None:
            return cached
        keyset = self.get(keyset_id)
        with self._db.read() as tx:
            file_name = rows.key_file(tx, keyset_id)
        path = self._keys_dir / str(file_name)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError(
                "keyset private key is missing or unreadable", detail={"path": str(path)}
            ) from exc
        if not isinstance(key, rsa.RSAPrivateKey) or spki(key.public_key()) != spki(
            keyset.public_key
        ):
            raise ConfigError("keyset private key does not match its descriptor")
        with self._lock:
            self._private[keyset_id] = key
        return key

    def list_keysets(self, *, now: int | None = None) -> list[Keyset]:
        """All keysets (or only those still depositable at ``now``), newest window first."""
        with self._db.read() as tx:
            stored = rows.all_descriptors(tx)
        return [
            _descriptor_to_keyset(descriptor)
            for descriptor, deposit_until in stored
            if now is None or deposit_until > now
        ]

    def refresh_signatures(self) -> int:
        """Re-sign stored descriptors that the bank's current key did not sign; returns how many.

        The descriptors are published with the signature made when each keyset was created.
        After the bank's key is replaced (``bank init --force``, a compromise), those signatures
        would no longer match the certificate served beside them, and wallets and merchants
        would reject every keyset. The keysets themselves (values, windows, RSA keys) are
        unchanged; only the bank's attestation of them is renewed. Runs at start-up.
        """
        public = self._bank_key.public_key
        stale: list[tuple[bytes, dict[str, Any]]] = []
        with self._db.read() as tx:
            stored = rows.all_rows(tx)
        for row in stored:
            doc = json.loads(row.descriptor)
            try:
                verify_object(doc, public, KEYSET_DESCRIPTOR_KIND)
            except EcashError as exc:
                keyset = self._checked_for_resigning(row, doc, exc)
                resigned = sign_object(
                    self._bank_key,
                    KEYSET_DESCRIPTOR_KIND,
                    keyset.descriptor(),
                    signer=self._signer_hint,
                )
                logger.warning("re-signing keyset %s under the bank's current key", keyset.hex_id)
                stale.append((keyset.keyset_id, resigned))
        if stale:
            with self._db.transaction() as tx:
                for keyset_id, doc in stale:
                    rows.update_descriptor(tx, keyset_id, json.dumps(doc, sort_keys=True))
        return len(stale)

    def _checked_for_resigning(self, row: KeysetRow, doc: Any, cause: EcashError) -> Keyset:
        """The keyset of a stored descriptor, only if everything else the bank holds agrees.

        Re-signing whatever the database says would turn write access to the database into the
        bank's signature on any descriptor; so the descriptor must match its own row's columns
        and the RSA private key file on disk, or the bank refuses to start.
        """
        body = doc.get("body") if isinstance(doc, dict) else None
        if not isinstance(body, dict):
            raise StorageError("a stored keyset descriptor has no body") from cause
        keyset = Keyset.from_descriptor(body)
        columns: dict[str, Any] = {
            "keyset_id": row.keyset_id,
            "value": row.value,
            "currency": row.currency,
            "withdraw_from": row.withdraw_from,
            "withdraw_until": row.withdraw_until,
            "deposit_until": row.deposit_until,
            "public_key": row.public_key,
            "variant": row.variant,
        }
        described = keyset.columns()
        differing = sorted(k for k in columns if columns[k] != described[k])
        if differing:
            raise StorageError(
                "a keyset descriptor that the bank's key did not sign disagrees with its row;"
                " refusing to re-sign it",
                detail={"keyset_id": keyset.hex_id, "fields": differing},
            ) from cause
        self.private_key(keyset.keyset_id)  # the key file on disk must match, too
        return keyset

    def save_certified_list(self, doc: Mapping[str, Any]) -> None:
        """Keep the central bank's ``bank-keyset-list`` (verified by the caller) to serve it
        with the descriptors (docs/protocol.md 4.1)."""
        write_file_atomic(
            self._keys_dir / KEYSET_LIST_FILE, canonical_encode(dict(doc)), mode=0o644
        )

    def certified_list(self) -> dict[str, Any] | None:
        """The stored ``bank-keyset-list``; None before the central bank certified one."""
        try:
            data = (self._keys_dir / KEYSET_LIST_FILE).read_bytes()
        except FileNotFoundError:
            return None
        doc: dict[str, Any] = json.loads(data)
        return doc

    def signed_descriptors(self, *, now: int) -> list[dict[str, Any]]:
        """The bank-signed descriptors of keysets whose deposit window is still open."""
        with self._db.read() as tx:
            stored = rows.depositable_descriptors(tx, now)
        return [json.loads(d) for d in stored]
