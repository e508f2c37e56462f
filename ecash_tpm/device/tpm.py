"""The TPM 2.0 device: the only module of the project that talks to tpm2-pytss.

Everything crossing this module's boundary is plain bytes/ints in TPM wire formats (marshalled
TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE, uncompressed points), so verifiers stay pure and
never import a TPM library.

Without a resource manager (swtpm, raw /dev/tpm0) transient objects and sessions survive the
process that made them, and libtpms has only 3 object slots. So the device flushes leftovers
when it opens, creates primaries (SRK, EK) only for the command that needs them, keeps at most
the AK and the DAA key loaded, and flushes everything on :meth:`TpmDevice.close`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import (
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_ECC,
    TPM2_HT,
    TPM2_PT,
    TPM2_PT_NV,
    TPM2_SE,
    TPMA_OBJECT,
)
from tpm2_pytss.types import (
    TPM2B_ECC_POINT,
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPML_DIGEST,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_ECC_POINT,
    TPMT_HA,
    TPMT_PUBLIC,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
)

from ecash_tpm.device.constants import (
    AK_ATTRIBUTES,
    DAA_ATTRIBUTES,
    EK_CERT_NV_RANGE,
    EK_SPECS,
    POLICY_A_SHA384,
    POLICY_C_SHA384,
    SRK_ATTRIBUTES,
    EkKind,
    EkSpec,
)
from ecash_tpm.device.errors import (
    EcdaaUnsupportedError,
    EkCertificateMissingError,
    EkUnsupportedError,
    KeyBlobError,
    TpmArgumentError,
    TpmCommandError,
    TpmConnectionError,
)

DEFAULT_TCTI = "device:/dev/tpmrm0"
MAX_QUALIFYING_DATA = 32
PCR_COUNT = 24
_TRANSIENT_FIRST = int(TPM2_HT.TRANSIENT) << 24
_SESSION_RANGES = (int(TPM2_HT.LOADED_SESSION) << 24, int(TPM2_HT.SAVED_SESSION) << 24)

AK_TEMPLATE = "ecc256:ecdsa-sha256:null"
DAA_TEMPLATE = "ecc_bn_p256:ecdaa0-sha256"
_BLOB_NAMES = {"ak": "ak", "daa": "daa"}

# TPM_PT_* fixed properties (PT_FIXED + n); tpm2-pytss 3.0 does not name all of them
_PT_FAMILY_INDICATOR = 0x100
_PT_REVISION = 0x102
_PT_MANUFACTURER = 0x105
_PT_VENDOR_STRINGS = (0x106, 0x107, 0x108, 0x109)
_PT_FIRMWARE_VERSION_1 = 0x10B
_PT_FIRMWARE_VERSION_2 = 0x10C


# --- small public types ------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRef:
    """A key known to one open :class:`TpmDevice`.

    ``public`` is the marshalled TPM2B_PUBLIC (what tpm2-tools writes with ``-u``), ``name`` the
    TPM Name (nameAlg || digest), ``point`` the ECC public point ``04||X||Y`` (None for RSA).
    The ESYS handle is opaque and valid only while the device is open.
    """

    role: str
    public: bytes
    name: bytes
    point: bytes | None
    esys_handle: Any = field(default=None, repr=False, compare=False)
    owner: Any = field(default=None, repr=False, compare=False)


class CommitResult(NamedTuple):
    """TPM2_Commit outputs; a point is ``04||X(32)||Y(32)`` or None when the TPM omitted it."""

    K: bytes | None
    L: bytes | None
    E: bytes | None
    counter: int


@dataclass(frozen=True)
class EccParameters:
    """TPM2_ECC_Parameters of one curve, as integers."""

    curve: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int


@dataclass
class TpmInfo:
    """What ``ecash-tpm tpm info`` reports."""

    manufacturer: str
    vendor: str
    firmware_version: str
    spec_version: str
    ek_certificates: dict[EkKind, bytes]
    pcr_banks: list[str]
    ecc_curves: list[str]
    ecdaa_supported: bool
    bn_p256_supported: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "manufacturer": self.manufacturer,
            "vendor": self.vendor,
            "firmware_version": self.firmware_version,
            "spec_version": self.spec_version,
            "ek_types": [k.value for k in self.ek_certificates],
            "pcr_banks": list(self.pcr_banks),
            "ecc_curves": list(self.ecc_curves),
            "ecdaa_supported": self.ecdaa_supported,
            "bn_p256_supported": self.bn_p256_supported,
        }


# --- helpers ---------------------------------------------------------------------------------


def _rc_detail(op: str, exc: TSS2_Exception) -> dict[str, Any]:
    rc = int(exc.rc)
    return {
        "operation": op,
        "rc": rc,
        "rc_hex": f"0x{rc:08x}",
        "error_hex": f"0x{int(exc.error):x}",
    }


@contextlib.contextmanager
def _tpm_call(op: str) -> Iterator[None]:
    """Turn TSS2_Exception into TpmCommandError naming the command and the TPM rc."""
    try:
        yield
    except TSS2_Exception as exc:
        raise TpmCommandError(f"{op} failed: {exc}", detail=_rc_detail(op, exc)) from exc


def _unmarshal_exact(cls: Any, data: bytes, what: str) -> Any:
    """Unmarshal ``data`` as ``cls`` and require that it is consumed exactly."""
    if not isinstance(data, bytes | bytearray):
        raise TpmArgumentError(f"{what} must be bytes")
    try:
        obj, used = cls.unmarshal(bytes(data))
    except TSS2_Exception as exc:
        raise TpmArgumentError(f"{what} is not a valid {cls.__name__}") from exc
    if used != len(data):
        raise TpmArgumentError(
            f"{what} has {len(data) - used} trailing bytes after the {cls.__name__}",
            detail={"length": len(data), "consumed": used},
        )
    return obj


def _point_bytes(pt: Any, size: int = 32) -> bytes | None:
    """TPMS_ECC_POINT -> ``04||X||Y`` (fixed width), None when the TPM returned no point."""
    x, y = bytes(pt.x), bytes(pt.y)
    if not x and not y:
        return None
    return b"\x04" + x.rjust(size, b"\0") + y.rjust(size, b"\0")


def _parse_point(data: bytes, what: str) -> TPM2B_ECC_POINT:
    if not isinstance(data, bytes | bytearray) or len(data) != 65 or data[0] != 4:
        raise TpmArgumentError(f"{what} must be an uncompressed point 04||X(32)||Y(32)")
    return TPM2B_ECC_POINT(point=TPMS_ECC_POINT(x=bytes(data[1:33]), y=bytes(data[33:])))


def _pcr_selection(bank: str, indices: Sequence[int]) -> TPML_PCR_SELECTION:
    idx = sorted(set(indices))
    for i in idx:
        if not isinstance(i, int) or not 0 <= i < PCR_COUNT:
            raise TpmArgumentError(f"PCR index {i!r} out of range 0..{PCR_COUNT - 1}")
    if not idx:
        return TPML_PCR_SELECTION()
    return TPML_PCR_SELECTION.parse(f"{bank}:{','.join(str(i) for i in idx)}")


def _hash_alg(bank: str) -> TPM2_ALG:
    try:
        alg = TPM2_ALG.parse(bank)
    except (ValueError, TypeError) as exc:
        raise TpmArgumentError(f"unknown hash algorithm {bank!r}") from exc
    if alg not in (TPM2_ALG.SHA1, TPM2_ALG.SHA256, TPM2_ALG.SHA384, TPM2_ALG.SHA512):
        raise TpmArgumentError(f"unsupported PCR bank {bank!r}")
    return alg


def _check_qualifying(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray):
        raise TpmArgumentError("qualifying data must be bytes")
    if len(data) > MAX_QUALIFYING_DATA:
        raise TpmArgumentError(
            f"qualifying data is {len(data)} bytes; at most {MAX_QUALIFYING_DATA} (hash it)",
        )
    return bytes(data)


def _ek_template(spec: EkSpec) -> TPMT_PUBLIC:
    """The TCG EK Credential Profile template (L-1, L-2 or H-3)."""
    t = TPMT_PUBLIC()
    t.nameAlg = TPM2_ALG.parse(spec.name_hash)
    t.objectAttributes = TPMA_OBJECT(spec.attributes)
    t.authPolicy = spec.auth_policy
    if spec.kind is EkKind.RSA_2048:
        t.type = TPM2_ALG.RSA
        d = t.parameters.rsaDetail
        d.symmetric.algorithm = TPM2_ALG.AES
        d.symmetric.keyBits.aes = 128
        d.symmetric.mode.aes = TPM2_ALG.CFB
        d.scheme.scheme = TPM2_ALG.NULL
        d.keyBits = 2048
        d.exponent = 0
        t.unique.rsa = bytes(256)
        return t
    t.type = TPM2_ALG.ECC
    e = t.parameters.eccDetail
    e.symmetric.algorithm = TPM2_ALG.AES
    e.symmetric.mode.aes = TPM2_ALG.CFB
    e.scheme.scheme = TPM2_ALG.NULL
    e.kdf.scheme = TPM2_ALG.NULL
    if spec.kind is EkKind.ECC_P256:
        e.symmetric.keyBits.aes = 128
        e.curveID = TPM2_ECC.NIST_P256
        t.unique.ecc.x = bytes(32)
        t.unique.ecc.y = bytes(32)
    else:  # H-3: high range templates have an empty unique field
        e.symmetric.keyBits.aes = 256
        e.curveID = TPM2_ECC.NIST_P384
    return t


def _srk_template() -> TPMT_PUBLIC:
    """Our storage primary (owner hierarchy): ECC P-256, AES-128-CFB, zero unique.

    It is re-derived from the owner seed on every use, so saved child blobs load across
    processes and reboots without a persistent handle.
    """
    t = TPMT_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=TPMA_OBJECT(SRK_ATTRIBUTES))
    t.unique.ecc.x = bytes(32)
    t.unique.ecc.y = bytes(32)
    return t


def _child_template(role: str) -> TPMT_PUBLIC:
    if role == "ak":
        return TPMT_PUBLIC.parse(AK_TEMPLATE, objectAttributes=TPMA_OBJECT(AK_ATTRIBUTES))
    return TPMT_PUBLIC.parse(DAA_TEMPLATE, objectAttributes=TPMA_OBJECT(DAA_ATTRIBUTES))


def _template_matches(expected: TPMT_PUBLIC, actual: TPMT_PUBLIC) -> bool:
    ee, ae = expected.parameters.eccDetail, actual.parameters.eccDetail
    return (
        int(actual.type) == int(expected.type)
        and int(actual.nameAlg) == int(expected.nameAlg)
        and int(actual.objectAttributes) == int(expected.objectAttributes)
        and int(ae.curveID) == int(ee.curveID)
        and int(ae.scheme.scheme) == int(ee.scheme.scheme)
        and int(ae.scheme.details.anySig.hashAlg) == int(ee.scheme.details.anySig.hashAlg)
        and bytes(actual.authPolicy) == b""
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_ref(role: str, pub: TPM2B_PUBLIC, handle: Any, owner: Any) -> KeyRef:
    area = pub.publicArea
    point = None
    if int(area.type) == int(TPM2_ALG.ECC):
        size = 48 if int(area.parameters.eccDetail.curveID) == int(TPM2_ECC.NIST_P384) else 32
        point = _point_bytes(area.unique.ecc, size)
    return KeyRef(
        role=role,
        public=pub.marshal(),
        name=bytes(pub.get_name()),
        point=point,
        esys_handle=handle,
        owner=owner,
    )


# --- the device ------------------------------------------------------------------------------


class TpmDevice:
    """An open connection to one TPM (context manager).

    ``tcti`` is a tpm2-tss TCTI string: ``swtpm:host=127.0.0.1,port=N``, ``device:/dev/tpmrm0``,
    ``tabrmd``. Opening flushes leftover transient objects and sessions unless
    ``flush_leftovers=False`` (they are garbage without a resource manager; with one, the list
    is empty).
    """

    def __init__(self, tcti: str = DEFAULT_TCTI, *, flush_leftovers: bool = True) -> None:
        os.environ.setdefault("TSS2_LOG", "esys+none")
        self.tcti = tcti
        self._loaded: dict[tuple[str, Path], KeyRef] = {}
        self._ek_cache: dict[EkKind, KeyRef] = {}
        self._nv_buffer_max: int | None = None
        try:
            self._esys: ESAPI | None = ESAPI(tcti)
        except TSS2_Exception as exc:
            raise TpmConnectionError(
                f"cannot open TPM via TCTI {tcti!r}: {exc}",
                detail={"tcti": tcti, **_rc_detail("Esys_Initialize", exc)},
            ) from exc
        except (OSError, ValueError) as exc:
            raise TpmConnectionError(
                f"cannot open TPM via TCTI {tcti!r}: {exc}", detail={"tcti": tcti}
            ) from exc
        try:
            if flush_leftovers:
                self.flush_leftovers()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> TpmDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def esys(self) -> ESAPI:
        if self._esys is None:
            raise TpmConnectionError("the TPM device is closed", detail={"tcti": self.tcti})
        return self._esys

    def close(self) -> None:
        """Flush the keys we loaded and release the TCTI; safe to call twice."""
        if self._esys is None:
            return
        for ref in list(self._loaded.values()):
            with contextlib.suppress(TSS2_Exception):
                self._esys.flush_context(ref.esys_handle)
        self._loaded.clear()
        self._esys.close()
        self._esys = None

    def flush_leftovers(self) -> int:
        """Flush transient objects and sessions this device did not load; returns the count."""
        ours = set()
        for ref in self._loaded.values():
            with _tpm_call("TR_GetTPMHandle"):
                ours.add(int(self.esys.tr_get_tpm_handle(ref.esys_handle)))
        count = 0
        seen: set[int] = set()
        for first in (_TRANSIENT_FIRST, *_SESSION_RANGES):
            for handle in self._handles(first):
                if handle in ours or handle in seen:
                    continue
                seen.add(handle)
                with _tpm_call("FlushContext(leftover)"):
                    tr = self.esys.tr_from_tpmpublic(handle)
                    self.esys.flush_context(tr)
                count += 1
        return count

    # -- capabilities ---------------------------------------------------------------------

    def _handles(self, first: int) -> list[int]:
        """Handles listed for one handle type (given by its first handle), following moreData.

        Loaded sessions are listed under TPM_HT_LOADED_SESSION but policy sessions carry
        0x03xxxxxx handles, so both session types are accepted for the session ranges.
        """
        kinds = {first >> 24}
        if first in _SESSION_RANGES:
            kinds = {r >> 24 for r in _SESSION_RANGES}
        out: list[int] = []
        prop = first
        while True:
            with _tpm_call("GetCapability(HANDLES)"):
                more, data = self.esys.get_capability(TPM2_CAP.HANDLES, prop, 64)
            handles = [int(h) for h in data.data.handles]
            new = [h for h in handles if (h >> 24) in kinds and h not in out]
            out.extend(new)
            if not more or not new:
                return out
            prop = max(new) + 1

    def properties(self, first: int = int(TPM2_PT.FIXED), count: int = 0x7F) -> dict[int, int]:
        """TPM properties (TPM_PT_*) from ``first``, as ints."""
        out: dict[int, int] = {}
        prop = first
        while len(out) < count:
            with _tpm_call("GetCapability(TPM_PROPERTIES)"):
                more, data = self.esys.get_capability(
                    TPM2_CAP.TPM_PROPERTIES, prop, count - len(out)
                )
            props = data.data.tpmProperties  # keep `data` referenced while reading
            got = [(int(p.property), int(p.value)) for p in props]
            out.update(got)
            if not more or not got:
                break
            prop = got[-1][0] + 1
        return out

    def ecc_curves(self) -> list[int]:
        """TPM_ECC_CURVE ids the TPM implements."""
        with _tpm_call("GetCapability(ECC_CURVES)"):
            _more, data = self.esys.get_capability(TPM2_CAP.ECC_CURVES, 0, 64)
        curves = data.data.eccCurves
        return [int(c) for c in curves]

    def has_algorithm(self, alg: int) -> bool:
        with _tpm_call("GetCapability(ALGS)"):
            _more, data = self.esys.get_capability(TPM2_CAP.ALGS, int(alg), 1)
        algs = data.data.algorithms
        return any(int(a.alg) == int(alg) for a in algs)

    def ecdaa_support(self) -> tuple[bool, bool]:
        """(ECDAA algorithm present, BN_P256 curve present)."""
        return self.has_algorithm(TPM2_ALG.ECDAA), int(TPM2_ECC.BN_P256) in self.ecc_curves()

    def require_ecdaa(self) -> None:
        """Raise ``tpm.ecdaa_unsupported`` unless ECDAA on BN_P256 is available."""
        ecdaa, bn = self.ecdaa_support()
        if not (ecdaa and bn):
            missing = [n for n, ok in (("ECDAA", ecdaa), ("BN_P256", bn)) if not ok]
            raise EcdaaUnsupportedError(
                "this TPM cannot do ECDAA on BN_P256 (missing: "
                + ", ".join(missing)
                + "); the anonymous credential needs it",
                detail={"missing": missing, "tcti": self.tcti},
            )

    def ecc_parameters(self, curve: str = "bn_p256") -> EccParameters:
        """TPM2_ECC_Parameters, so callers can check their curve constants against the TPM."""
        try:
            curve_id = TPM2_ECC.parse(curve)
        except (ValueError, TypeError) as exc:
            raise TpmArgumentError(f"unknown curve {curve!r}") from exc
        with _tpm_call("ECC_Parameters"):
            d = self.esys.ecc_parameters(curve_id)

        def num(v: Any) -> int:
            return int.from_bytes(bytes(v), "big")

        return EccParameters(
            curve, num(d.p), num(d.a), num(d.b), num(d.gX), num(d.gY), num(d.n), num(d.h)
        )

    def pcr_banks(self) -> list[str]:
        """Hash algorithms with at least one allocated PCR."""
        with _tpm_call("GetCapability(PCRS)"):
            _more, data = self.esys.get_capability(TPM2_CAP.PCRS, 0, 16)
        sels = data.data.assignedPCR
        banks = []
        for sel in sels.pcrSelections[: sels.count]:
            bits = bytes(sel.pcrSelect)[: sel.sizeofSelect]
            if any(bits):
                banks.append(str(TPM2_ALG(int(sel.hash))).lower())
        return banks

    def get_random(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            with _tpm_call("GetRandom"):
                out += bytes(self.esys.get_random(min(32, n - len(out))))
        return out

    # -- EK -------------------------------------------------------------------------------

    def _nv_indices(self) -> set[int]:
        return set(self._handles(EK_CERT_NV_RANGE[0]))

    def ek_kinds_present(self) -> list[EkKind]:
        """EK kinds whose certificate is stored in NV (the ones a verifier can check)."""
        nv = self._nv_indices()
        return [k for k, s in EK_SPECS.items() if s.cert_nv_index in nv]

    def _nv_read_all(self, index: int) -> bytes:
        if self._nv_buffer_max is None:
            props = self.properties(int(TPM2_PT_NV.BUFFER_MAX), 1)
            self._nv_buffer_max = props.get(int(TPM2_PT_NV.BUFFER_MAX), 512) or 512
        esys = self.esys
        with _tpm_call("TR_FromTPMPublic(NV)"):
            nvh = esys.tr_from_tpmpublic(index)
        try:
            with _tpm_call("NV_ReadPublic"):
                nv_pub, _name = esys.nv_read_public(nvh)
            size = int(nv_pub.nvPublic.dataSize)
            out = bytearray()
            # EK cert indices normally allow authRead with empty auth; else try owner auth.
            auth_order = (nvh, ESYS_TR.OWNER)
            for i, auth in enumerate(auth_order):
                try:
                    out.clear()
                    while len(out) < size:
                        chunk = min(self._nv_buffer_max, size - len(out))
                        out += bytes(esys.nv_read(nvh, chunk, len(out), auth_handle=auth))
                    break
                except TSS2_Exception as exc:
                    if i == len(auth_order) - 1:
                        raise TpmCommandError(
                            f"NV_Read of 0x{index:08x} failed: {exc}",
                            detail={**_rc_detail("NV_Read", exc), "nv_index": f"0x{index:08x}"},
                        ) from exc
            return bytes(out)
        finally:
            with contextlib.suppress(TSS2_Exception):
                esys.tr_close(nvh)

    def ek_certificate(self, kind: EkKind | str) -> bytes:
        """Raw NV contents of the EK certificate (DER, possibly with trailing bytes)."""
        spec = EK_SPECS[EkKind(kind)]
        if spec.cert_nv_index not in self._nv_indices():
            raise EkCertificateMissingError(
                f"no {spec.kind.value} EK certificate in NV 0x{spec.cert_nv_index:08x}",
                detail={"ek": spec.kind.value, "nv_index": f"0x{spec.cert_nv_index:08x}"},
            )
        return self._nv_read_all(spec.cert_nv_index)

    def _check_ek_supported(self, spec: EkSpec) -> None:
        if spec.kind is EkKind.RSA_2048:
            ok = self.has_algorithm(TPM2_ALG.RSA)
        else:
            curve = TPM2_ECC.NIST_P256 if spec.kind is EkKind.ECC_P256 else TPM2_ECC.NIST_P384
            ok = self.has_algorithm(TPM2_ALG.ECC) and int(curve) in self.ecc_curves()
        if not ok:
            raise EkUnsupportedError(
                f"this TPM cannot create a {spec.kind.value} EK", detail={"ek": spec.kind.value}
            )

    @contextlib.contextmanager
    def _ek_loaded(self, kind: EkKind) -> Iterator[Any]:
        """Create the EK primary for the duration of one command, then flush it."""
        spec = EK_SPECS[kind]
        self._check_ek_supported(spec)
        esys = self.esys
        with _tpm_call(f"CreatePrimary(EK {kind.value})"):
            handle, pub, *_ = esys.create_primary(
                TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC(_ek_template(spec)), ESYS_TR.ENDORSEMENT
            )
        try:
            if kind not in self._ek_cache:
                self._ek_cache[kind] = _key_ref(f"ek:{kind.value}", pub, None, self)
            yield handle
        finally:
            with contextlib.suppress(TSS2_Exception):
                esys.flush_context(handle)

    def ek(self, kind: EkKind | str) -> KeyRef:
        """The EK of ``kind`` from its TCG template (public part; no handle is kept)."""
        kind = EkKind(kind)
        if kind not in self._ek_cache:
            with self._ek_loaded(kind):
                pass
        return self._ek_cache[kind]

    def ek_public(self, kind: EkKind | str) -> bytes:
        """Marshalled TPM2B_PUBLIC of the EK."""
        return self.ek(kind).public

    # -- AK and DAA key -------------------------------------------------------------------

    @contextlib.contextmanager
    def _srk(self) -> Iterator[Any]:
        esys = self.esys
        with _tpm_call("CreatePrimary(SRK)"):
            handle, *_ = esys.create_primary(
                TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC(_srk_template()), ESYS_TR.OWNER
            )
        try:
            yield handle
        finally:
            with contextlib.suppress(TSS2_Exception):
                esys.flush_context(handle)

    def _load_or_create(self, role: str, data_dir: str | os.PathLike[str]) -> KeyRef:
        ddir = Path(data_dir).resolve()
        cached = self._loaded.get((role, ddir))
        if cached is not None:
            return cached
        if role == "daa":
            self.require_ecdaa()
        pub_path = ddir / f"{_BLOB_NAMES[role]}.pub"
        priv_path = ddir / f"{_BLOB_NAMES[role]}.priv"
        expected = _child_template(role)
        esys = self.esys
        have = (pub_path.exists(), priv_path.exists())
        if have == (True, True):
            try:
                pub = _unmarshal_exact(TPM2B_PUBLIC, pub_path.read_bytes(), str(pub_path))
                priv = _unmarshal_exact(TPM2B_PRIVATE, priv_path.read_bytes(), str(priv_path))
            except (OSError, TpmArgumentError) as exc:
                raise KeyBlobError(
                    f"cannot read the {role} key blobs: {exc}", detail={"dir": str(ddir)}
                ) from exc
            if not _template_matches(expected, pub.publicArea):
                raise KeyBlobError(
                    f"{pub_path} does not hold a key with the {role} template",
                    detail={"path": str(pub_path)},
                )
            with self._srk() as srk:
                try:
                    handle = esys.load(srk, priv, pub)
                except TSS2_Exception as exc:
                    raise KeyBlobError(
                        f"the saved {role} key does not load on this TPM: {exc}",
                        detail={**_rc_detail("Load", exc), "dir": str(ddir)},
                    ) from exc
        elif have == (False, False):
            ddir.mkdir(parents=True, exist_ok=True)
            with self._srk() as srk:
                with _tpm_call(f"Create({role})"):
                    priv, pub, *_ = esys.create(
                        srk, TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC(expected)
                    )
                with _tpm_call(f"Load({role})"):
                    handle = esys.load(srk, priv, pub)
            _write_atomic(priv_path, priv.marshal())
            _write_atomic(pub_path, pub.marshal())
        else:
            raise KeyBlobError(
                f"only one of {pub_path.name}/{priv_path.name} exists in {ddir}",
                detail={"dir": str(ddir)},
            )
        ref = _key_ref(role, pub, handle, self)
        self._loaded[(role, ddir)] = ref
        return ref

    def load_or_create_ak(self, data_dir: str | os.PathLike[str]) -> KeyRef:
        """The AK (restricted ECDSA P-256 signing key) whose blobs live in ``data_dir``."""
        return self._load_or_create("ak", data_dir)

    def load_or_create_daa_key(self, data_dir: str | os.PathLike[str]) -> KeyRef:
        """The ECDAA key on BN_P256 whose blobs live in ``data_dir``; ``point`` is Q."""
        return self._load_or_create("daa", data_dir)

    def unload(self, key: KeyRef) -> None:
        """Flush a loaded AK/DAA key early (it reloads from its blobs on next use)."""
        for k, ref in list(self._loaded.items()):
            if ref is key:
                del self._loaded[k]
                with _tpm_call("FlushContext"):
                    self.esys.flush_context(ref.esys_handle)

    def _handle(self, key: KeyRef, role: str | None = None) -> Any:
        if not isinstance(key, KeyRef) or key.owner is not self or key.esys_handle is None:
            raise TpmArgumentError("key is not a loaded key of this TPM device")
        if not any(ref is key for ref in self._loaded.values()):
            raise TpmArgumentError("key was unloaded or the device was closed")
        if role is not None and key.role != role:
            raise TpmArgumentError(f"expected the {role} key, got {key.role}")
        return key.esys_handle

    # -- PCRs ----------------------------------------------------------------------------

    def pcr_read(self, indices: Sequence[int], bank: str = "sha256") -> dict[int, bytes]:
        """Current values of the selected PCRs of one bank."""
        _hash_alg(bank)
        wanted = sorted(set(indices))
        _pcr_selection(bank, wanted)
        out: dict[int, bytes] = {}
        for start in range(0, len(wanted), 8):  # TPML_DIGEST holds at most 8 digests
            chunk = wanted[start : start + 8]
            with _tpm_call("PCR_Read"):
                _ctr, sel_out, digests = self.esys.pcr_read(_pcr_selection(bank, chunk))
            got: list[int] = []
            for sel in sel_out.pcrSelections[: sel_out.count]:
                bits = bytes(sel.pcrSelect)[: sel.sizeofSelect]
                got.extend(i for i in range(len(bits) * 8) if bits[i // 8] >> (i % 8) & 1)
            values = [bytes(d) for d in digests]
            if got != chunk or len(values) != len(chunk):
                raise TpmCommandError(
                    f"PCR_Read returned PCRs {got} for requested {chunk} in bank {bank}",
                    detail={"operation": "PCR_Read", "requested": chunk, "returned": got},
                )
            out.update(zip(chunk, values, strict=True))
        return out

    def pcr_extend(self, index: int, digest: bytes, bank: str = "sha256") -> None:
        """PCR[index] = H(PCR[index] || digest) in ``bank``; ``digest`` is the bank's size."""
        alg = _hash_alg(bank)
        _pcr_selection(bank, [index])
        size = hashlib.new(bank).digest_size
        if not isinstance(digest, bytes | bytearray) or len(digest) != size:
            raise TpmArgumentError(f"a {bank} extend digest must be {size} bytes")
        ha = TPMT_HA(hashAlg=alg)
        setattr(ha.digest, bank, bytes(digest))
        with _tpm_call("PCR_Extend"):
            self.esys.pcr_extend(ESYS_TR.PCR0 + index, TPML_DIGEST_VALUES([ha]))

    # -- attestation ---------------------------------------------------------------------

    def quote(
        self, ak: KeyRef, pcrs: Sequence[int], qualifying: bytes, bank: str = "sha256"
    ) -> tuple[bytes, bytes]:
        """TPM2_Quote -> (marshalled TPMS_ATTEST, marshalled TPMT_SIGNATURE) as tpm2_quote -m/-s."""
        handle = self._handle(ak, "ak")
        _hash_alg(bank)
        sel = _pcr_selection(bank, pcrs)
        with _tpm_call("Quote"):
            attest, sig = self.esys.quote(handle, sel, _check_qualifying(qualifying))
        return bytes(attest), sig.marshal()

    def certify(self, obj: KeyRef, ak: KeyRef, qualifying: bytes) -> tuple[bytes, bytes]:
        """TPM2_Certify(obj by AK) -> (marshalled TPMS_ATTEST, marshalled TPMT_SIGNATURE)."""
        signer = self._handle(ak, "ak")
        target = self._handle(obj)
        with _tpm_call("Certify"):
            attest, sig = self.esys.certify(
                target, signer, _check_qualifying(qualifying), TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)
            )
        return bytes(attest), sig.marshal()

    def activate_credential(
        self,
        ak: KeyRef,
        ek: EkKind | str | KeyRef,
        credential_blob: bytes,
        encrypted_secret: bytes,
    ) -> bytes:
        """TPM2_ActivateCredential: recover the secret bound to Name(AK) and this TPM's EK.

        ``credential_blob`` is a marshalled TPM2B_ID_OBJECT, ``encrypted_secret`` a marshalled
        TPM2B_ENCRYPTED_SECRET. The EK's policy is satisfied with a policy session:
        PolicySecret(ENDORSEMENT), plus PolicyOR(PolicyA, PolicyC) for the high-range P-384 EK.
        """
        handle = self._handle(ak, "ak")
        kind = EkKind(ek.role.removeprefix("ek:")) if isinstance(ek, KeyRef) else EkKind(ek)
        spec = EK_SPECS[kind]
        blob = _unmarshal_exact(TPM2B_ID_OBJECT, credential_blob, "credential blob")
        secret = _unmarshal_exact(TPM2B_ENCRYPTED_SECRET, encrypted_secret, "encrypted secret")
        esys = self.esys
        with self._ek_loaded(kind) as ek_handle:
            if isinstance(ek, KeyRef) and ek.public != self._ek_cache[kind].public:
                raise TpmArgumentError("the EK given is not this TPM's EK of that kind")
            with _tpm_call("StartAuthSession(EK policy)"):
                sess = esys.start_auth_session(
                    ESYS_TR.NONE,
                    ESYS_TR.NONE,
                    TPM2_SE.POLICY,
                    TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
                    TPM2_ALG.parse(spec.name_hash),
                )
            try:
                with _tpm_call("PolicySecret(ENDORSEMENT)"):
                    esys.policy_secret(ESYS_TR.ENDORSEMENT, sess, expiration=0)
                if spec.high_range:
                    with _tpm_call("PolicyOR"):
                        esys.policy_or(sess, TPML_DIGEST([POLICY_A_SHA384, POLICY_C_SHA384]))
                with _tpm_call("ActivateCredential"):
                    cert_info = esys.activate_credential(
                        handle, ek_handle, blob, secret, session2=sess
                    )
            finally:
                with contextlib.suppress(TSS2_Exception):
                    esys.flush_context(sess)
        return bytes(cert_info)

    # -- ECDAA ----------------------------------------------------------------------------

    def commit(
        self,
        key: KeyRef,
        p1: bytes | None = None,
        s2: bytes | None = None,
        y2: bytes | None = None,
    ) -> CommitResult:
        """TPM2_Commit on the DAA key.

        With s2/y2 the TPM uses J = (int(SHA-256(s2)) mod p, y2): K = sk*J, L = r*J; with P1,
        E = r*P1; without P1 and s2, E = r*G. The counter is passed to :meth:`ecdaa_sign`.
        """
        handle = self._handle(key, "daa")
        if (s2 is None) != (y2 is None):
            raise TpmArgumentError("s2 and y2 go together: give both or neither")
        p1_in = TPM2B_ECC_POINT() if p1 is None else _parse_point(p1, "P1")
        for v, what in ((s2, "s2"), (y2, "y2")):
            if v is not None and not isinstance(v, bytes | bytearray):
                raise TpmArgumentError(f"{what} must be bytes")
        if y2 is not None and len(y2) > 32:
            raise TpmArgumentError("y2 must be at most 32 bytes")
        # tpm2-pytss wants empty values, not None, for absent inputs
        with _tpm_call("Commit"):
            k, l_pt, e, counter = self.esys.commit(
                handle, p1_in, bytes(s2) if s2 else b"", bytes(y2) if y2 else b""
            )
        return CommitResult(
            _point_bytes(k.point), _point_bytes(l_pt.point), _point_bytes(e.point), int(counter)
        )

    def ecdaa_sign(self, key: KeyRef, digest: bytes, counter: int) -> tuple[bytes, bytes]:
        """TPM2_Sign with ECDAA -> (nonceK, s) exactly as the TPM returned them.

        nonceK (signatureR) has variable length (leading zeros dropped); hash it as is.
        """
        handle = self._handle(key, "daa")
        if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
            raise TpmArgumentError("the ECDAA digest must be 32 bytes")
        if not isinstance(counter, int) or not 0 <= counter <= 0xFFFF:
            raise TpmArgumentError("the commit counter must be a 16-bit integer")
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDAA)
        scheme.details.ecdaa.hashAlg = TPM2_ALG.SHA256
        scheme.details.ecdaa.count = counter
        with _tpm_call("Sign(ECDAA)"):
            sig = self.esys.sign(handle, bytes(digest), scheme)
        if int(sig.sigAlg) != int(TPM2_ALG.ECDAA):
            raise TpmCommandError(
                "TPM2_Sign did not return an ECDAA signature",
                detail={"operation": "Sign", "sigAlg": int(sig.sigAlg)},
            )
        return bytes(sig.signature.ecdaa.signatureR), bytes(sig.signature.ecdaa.signatureS)

    # -- info ----------------------------------------------------------------------------

    def info(self) -> TpmInfo:
        """Manufacturer, firmware, EK certificates, PCR banks, ECDAA/BN_P256 support."""
        props = self.properties()

        def text(*pts: int) -> str:
            raw = b"".join(props.get(int(p), 0).to_bytes(4, "big") for p in pts)
            return raw.replace(b"\0", b"").decode("ascii", errors="replace").strip()

        fw1 = props.get(_PT_FIRMWARE_VERSION_1, 0)
        fw2 = props.get(_PT_FIRMWARE_VERSION_2, 0)
        family = text(_PT_FAMILY_INDICATOR)
        rev = props.get(_PT_REVISION, 0)
        certs: dict[EkKind, bytes] = {}
        for kind in self.ek_kinds_present():
            certs[kind] = self.ek_certificate(kind)
        curves = self.ecc_curves()
        ecdaa = self.has_algorithm(TPM2_ALG.ECDAA)
        curve_names = []
        for c in curves:
            try:
                curve_names.append(str(TPM2_ECC(c)).lower())
            except ValueError:
                curve_names.append(f"0x{c:04x}")
        return TpmInfo(
            manufacturer=text(_PT_MANUFACTURER),
            vendor=text(*_PT_VENDOR_STRINGS),
            firmware_version=f"{fw1 >> 16}.{fw1 & 0xFFFF}.{fw2 >> 16}.{fw2 & 0xFFFF}",
            spec_version=f"{family} rev {rev // 100}.{rev % 100:02d}",
            ek_certificates=certs,
            pcr_banks=self.pcr_banks(),
            ecc_curves=curve_names,
            ecdaa_supported=ecdaa,
            bn_p256_supported=int(TPM2_ECC.BN_P256) in curves,
        )
