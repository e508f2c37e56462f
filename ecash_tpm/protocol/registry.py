"""How the issuer shares each member's T0 with the supervision department.

The issuer calls :meth:`MemberRegistry.register` inside the join's database transaction, after
every check passed and just before commit: if registration fails the join fails and no member
is left behind; if the commit fails afterwards the supervision department holds an entry for a
member that does not exist, which is harmless and heals itself, because member ids are derived
from T0 (:func:`member_id_for_t0`) and registration is idempotent. A member the opener cannot
trace would be the real failure, and this order rules it out.

Implementations: :class:`InMemoryRegistry` (tests), an in-process adapter around
:class:`ecash_tpm.supervision.domain.SupervisionDepartment` (its ``register_member`` method has
this signature), and :class:`ecash_tpm.clients.supervision.HttpMemberRegistry`, which signs the
entry with the issuer's key and POSTs it to ``/v1/registry``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.errors import EcashError, InputError

TAG_MEMBER_ID = "ecash-tpm/v1/member-id"


def member_id_for_t0(t0: Point) -> str:
    """``m-`` + 32 hex digits of Hash("ecash-tpm/v1/member-id", T0): stable per DAA key."""
    return "m-" + tagged_hash(TAG_MEMBER_ID, t0.encode())[:16].hex()


@dataclass(frozen=True)
class RegistryEntry:
    """One member as the supervision department needs it (docs/api.md ``/v1/registry``)."""

    member_id: str
    t0: Point
    account_id: str
    epoch: int

    def to_body(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "t0": b64u_encode(self.t0.encode()),
            "account_id": self.account_id,
            "epoch": self.epoch,
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RegistryEntry:
        try:
            member_id, account_id, epoch = body["member_id"], body["account_id"], body["epoch"]
            t0 = Point.decode(b64u_decode(body["t0"]))
        except (KeyError, TypeError) as exc:
            raise InputError(f"registration lacks a field: {exc}") from None
        except EcashError as exc:
            raise InputError(f"registration t0 is invalid: {exc.message}") from None
        if not isinstance(member_id, str) or not isinstance(account_id, str):
            raise InputError("member_id and account_id must be strings")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise InputError("epoch must be a non-negative integer")
        if member_id != member_id_for_t0(t0):
            raise InputError("member_id is not derived from t0")
        return cls(member_id, t0, account_id, epoch)


class MemberRegistry(Protocol):
    """Where T0s go; must be idempotent for an identical entry."""

    def register(self, entry: RegistryEntry) -> None: ...


class InMemoryRegistry:
    """A registry in a dict (tests, and the issuer's own view when no supervision runs)."""

    def __init__(self) -> None:
        self.entries: dict[bytes, RegistryEntry] = {}
        self._lock = threading.Lock()

    def register(self, entry: RegistryEntry) -> None:
        with self._lock:
            self.entries[entry.t0.encode()] = entry

    def lookup(self) -> dict[bytes, str]:
        """T0 encoding -> member id (the shape :func:`groupsig.open_and_identify` wants)."""
        with self._lock:
            return {k: v.member_id for k, v in self.entries.items()}


class CallbackRegistry:
    """Adapter for any callable ``register(entry)``, e.g. ``department.register_member``."""

    def __init__(self, callback: Any) -> None:
        self._callback = callback

    def register(self, entry: RegistryEntry) -> None:
        self._callback(entry)
