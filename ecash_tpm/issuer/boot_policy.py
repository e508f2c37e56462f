"""The issuer's measured-boot policy: decide on what the event log says was booted.

An alternative to golden PCR values (:mod:`ecash_tpm.issuer.policy`), after Keylime's
measured-boot policies: instead of listing the PCR values of every acceptable firmware build,
the issuer replays the device's TCG event log against the quote
(:func:`ecash_tpm.attest.eventlog.verify_replay`) and then judges the *events*. Only events of
quoted, replay-verified PCRs count, and a variable's value only if the event's digest is the
hash of its data -- otherwise a device could log "SecureBoot = 1" next to the digest of
"SecureBoot = 0" (go-attestation's rule).

Rules (the ``measured_boot`` object of the policy file, docs/protocol.md 3.4):

* ``require_secure_boot``: PCR 7 holds an EV_EFI_VARIABLE_DRIVER_CONFIG event of the global
  variable SecureBoot with the value 1 (TCG PC Client PFP 1.05, 10.4.4, "PCR[7]").
* ``db_allowed`` (every db entry is one of these, when non-empty), ``db_forbidden`` (none of
  these is in db), ``dbx_required`` (the revocation list holds at least these). An entry is
  named by the hash it stands for: the SHA-256 itself for EFI_CERT_SHA256 entries, SHA-256 of
  the DER for certificates (see :class:`ecash_tpm.attest.efi.SignatureEntry`).
* ``boot_loaders`` and ``kernels``: the SHA-256 (Authenticode) digests every
  EV_EFI_BOOT_SERVICES_APPLICATION event in PCR 4 must have; with ``kernels`` non-empty, one
  of them must have been booted. Event types are logged but not measured, so every PCR 4
  event counts as a boot application except separators and action strings whose digest is
  the hash of their data: relabelling an image's event does not hide it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ecash_tpm.attest.efi import (
    EFI_GLOBAL_VARIABLE,
    EFI_IMAGE_SECURITY_DATABASE,
    parse_signature_lists,
    parse_variable,
)
from ecash_tpm.attest.eventlog import EventLog, EventLogMalformedError, EventType
from ecash_tpm.errors import AttestationError
from ecash_tpm.issuer.errors import PcrPolicyConfigError

SECURE_BOOT_PCR = 7
BOOT_APPLICATION_PCR = 4
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_PCR4_MARKERS = frozenset(
    {EventType.EV_SEPARATOR, EventType.EV_EFI_ACTION, EventType.EV_ACTION}
)  # PFP 10.4.4, PCR[4]: not images, provided their digest is of their data


# --- errors ----------------------------------------------------------------------------------


class BootEventLogMissingError(AttestationError):
    """The policy judges the event log, but the device sent none."""

    code = "boot.event_log_missing"


class SecureBootDisabledError(AttestationError):
    """The log shows Secure Boot off (or does not show it on) under a policy requiring it."""

    code = "boot.secure_boot_disabled"


class BootVariableMissingError(AttestationError):
    """db or dbx has rules, but the log does not measure it in PCR 7."""

    code = "boot.variable_not_measured"


class DbEntryNotAllowedError(AttestationError):
    """db holds an entry outside ``db_allowed``: the platform trusts a key the issuer does not."""

    code = "boot.db_entry_not_allowed"


class DbEntryForbiddenError(AttestationError):
    """db holds an entry of ``db_forbidden`` (a leaked or test key)."""

    code = "boot.db_entry_forbidden"


class DbxEntryMissingError(AttestationError):
    """dbx lacks a revocation of ``dbx_required``: a known-vulnerable image could boot."""

    code = "boot.dbx_entry_missing"


class BootApplicationError(AttestationError):
    """A boot application (boot loader, kernel) the policy does not allow was started."""

    code = "boot.application_not_allowed"


class KernelNotMeasuredError(AttestationError):
    """The policy lists kernels, but none of them was measured."""

    code = "boot.kernel_not_measured"


# --- what the log says -----------------------------------------------------------------------


@dataclass(frozen=True)
class BootFacts:
    """What a replay-verified log says about the boot (``None``: not measured)."""

    bank: str
    events: int
    secure_boot: bool | None
    db: frozenset[bytes] | None
    dbx: frozenset[bytes] | None
    applications: tuple[bytes, ...]
    ignored: tuple[int, ...] = field(default=())
    """Events of the PCRs read whose data does not match their digest (not believed)."""


def boot_facts(log: EventLog, bank: str, verified: Iterable[int]) -> BootFacts:
    """Read Secure Boot, db, dbx and the boot applications from events of ``verified`` PCRs.

    Several measurements of one variable are combined conservatively: Secure Boot counts as on
    only if every measurement says 1, db is the union and dbx the intersection.
    """
    pcrs = frozenset(verified)
    secure: list[bool] = []
    db: list[frozenset[bytes]] = []
    dbx: list[frozenset[bytes]] = []
    apps: list[bytes] = []
    ignored: list[int] = []
    for ev in log.events_in(pcrs):
        if ev.pcr == BOOT_APPLICATION_PCR:
            if ev.type in _PCR4_MARKERS and ev.data_matches(bank):
                continue
            # The type is not measured: whatever else PCR 4 holds counts as a started image
            # (EV_EFI_BOOT_SERVICES_APPLICATION, whose digest is the image's, or a relabelled one).
            digest = ev.digests.get(bank)
            if digest is None:  # a replayed log has it; an unreplayed one is not read
                raise EventLogMalformedError(f"event {ev.number} has no {bank} digest")
            apps.append(digest)
            continue
        if ev.type != EventType.EV_EFI_VARIABLE_DRIVER_CONFIG or ev.pcr != SECURE_BOOT_PCR:
            continue
        try:
            if not ev.data_matches(bank):
                raise EventLogMalformedError("data does not match the digest")
            var = parse_variable(ev)
            if var.is_(EFI_GLOBAL_VARIABLE, "SecureBoot"):
                secure.append(var.data == b"\x01")
            elif var.guid == EFI_IMAGE_SECURITY_DATABASE and var.name in ("db", "dbx"):
                entries = frozenset(e.fingerprint for e in parse_signature_lists(ev, var.data))
                (db if var.name == "db" else dbx).append(entries)
        except EventLogMalformedError:
            ignored.append(ev.number)
    return BootFacts(
        bank=bank,
        events=len(log.events),
        secure_boot=all(secure) if secure else None,
        db=frozenset().union(*db) if db else None,
        dbx=frozenset.intersection(*dbx) if dbx else None,
        applications=tuple(apps),
        ignored=tuple(ignored),
    )


# --- the policy ------------------------------------------------------------------------------


def _hexes(values: Iterable[bytes]) -> list[str]:
    return sorted(v.hex() for v in values)


@dataclass(frozen=True)
class BootPolicy:
    """The measured-boot rules (module docstring); empty lists impose nothing."""

    require_secure_boot: bool = True
    db_allowed: frozenset[bytes] = frozenset()
    db_forbidden: frozenset[bytes] = frozenset()
    dbx_required: frozenset[bytes] = frozenset()
    boot_loaders: frozenset[bytes] = frozenset()
    kernels: frozenset[bytes] = frozenset()

    _LISTS = ("db_allowed", "db_forbidden", "dbx_required", "boot_loaders", "kernels")

    def required_pcrs(self) -> frozenset[int]:
        """PCRs the quote must cover for these rules to be backed by the replay."""
        out = set()
        if self.require_secure_boot or self.db_allowed or self.db_forbidden or self.dbx_required:
            out.add(SECURE_BOOT_PCR)
        if self.boot_loaders or self.kernels:
            out.add(BOOT_APPLICATION_PCR)
        return frozenset(out)

    def check(self, facts: BootFacts) -> None:
        """Raise the ``boot.*`` error of the first rule the facts break."""
        if self.require_secure_boot and facts.secure_boot is not True:
            state = "not measured" if facts.secure_boot is None else "disabled"
            raise SecureBootDisabledError(
                f"Secure Boot is {state} in the event log; the issuer requires it",
                detail={"secure_boot": state, "ignored_events": list(facts.ignored)},
            )
        for name, measured, wanted in (
            ("db", facts.db, self.db_allowed or self.db_forbidden),
            ("dbx", facts.dbx, self.dbx_required),
        ):
            if wanted and measured is None:
                raise BootVariableMissingError(
                    f"the event log does not measure {name} in PCR {SECURE_BOOT_PCR}",
                    detail={"variable": name, "ignored_events": list(facts.ignored)},
                )
        db, dbx = facts.db or frozenset(), facts.dbx or frozenset()
        if self.db_allowed and db - self.db_allowed:
            raise DbEntryNotAllowedError(
                "db trusts entries outside the policy's db_allowed",
                detail={"entries": _hexes(db - self.db_allowed)},
            )
        if db & self.db_forbidden:
            raise DbEntryForbiddenError(
                "db trusts a forbidden entry", detail={"entries": _hexes(db & self.db_forbidden)}
            )
        if self.dbx_required - dbx:
            raise DbxEntryMissingError(
                "dbx lacks required revocations",
                detail={"entries": _hexes(self.dbx_required - dbx)},
            )
        allowed = self.boot_loaders | self.kernels
        if allowed:
            bad = [a for a in facts.applications if a not in allowed]
            if bad:
                raise BootApplicationError(
                    "a boot application outside the policy was started",
                    detail={"applications": [a.hex() for a in bad]},
                )
        if self.kernels and not self.kernels & set(facts.applications):
            raise KernelNotMeasuredError(
                "none of the policy's kernels was booted",
                detail={"applications": [a.hex() for a in facts.applications]},
            )

    # -- file form ----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> BootPolicy:
        """The ``measured_boot`` object of the policy file (hex SHA-256 digests in lists)."""
        if not isinstance(data, dict):
            raise PcrPolicyConfigError("'measured_boot' must be an object")
        unknown = set(data) - {"require_secure_boot", *cls._LISTS}
        if unknown:
            raise PcrPolicyConfigError(f"unknown measured_boot keys {sorted(unknown)}")
        secure = data.get("require_secure_boot", True)
        if not isinstance(secure, bool):
            raise PcrPolicyConfigError("'require_secure_boot' must be true or false")
        lists: dict[str, frozenset[bytes]] = {}
        for key in cls._LISTS:
            values = data.get(key, [])
            if not isinstance(values, list) or not all(
                isinstance(v, str) and _HEX_RE.match(v.lower()) for v in values
            ):
                raise PcrPolicyConfigError(f"'{key}' must be a list of 64 hex digits")
            lists[key] = frozenset(bytes.fromhex(v) for v in values)
        return cls(require_secure_boot=secure, **lists)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"require_secure_boot": self.require_secure_boot}
        for key in self._LISTS:
            out[key] = _hexes(getattr(self, key))
        return out


__all__ = [
    "BOOT_APPLICATION_PCR",
    "SECURE_BOOT_PCR",
    "BootApplicationError",
    "BootEventLogMissingError",
    "BootFacts",
    "BootPolicy",
    "BootVariableMissingError",
    "DbEntryForbiddenError",
    "DbEntryNotAllowedError",
    "DbxEntryMissingError",
    "KernelNotMeasuredError",
    "SecureBootDisabledError",
    "boot_facts",
]
