"""Keys: the EK (certificate from NV, public part from its TCG template), the AK and DAA key.

Primaries (SRK, EK) are created only for the command that needs them and flushed right after;
the AK and DAA key are children of a re-derived SRK whose blobs are saved next to the wallet,
so at most those two objects stay loaded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_ECC, TPM2_PT_NV
from tpm2_pytss.types import TPM2B_PRIVATE, TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE

from ecash_tpm.device.constants import EK_CERT_NV_RANGE, EK_SPECS, EkKind, EkSpec
from ecash_tpm.device.errors import (
    EkCertificateMissingError,
    EkUnsupportedError,
    KeyBlobError,
    TpmArgumentError,
    TpmCommandError,
)
from ecash_tpm.device.models import KeyRef
from ecash_tpm.device.session import TpmSession
from ecash_tpm.device.templates import (
    child_template,
    ek_template,
    srk_template,
    template_matches,
)
from ecash_tpm.device.tss import point_bytes, rc_detail, tpm_call, unmarshal_exact

_BLOB_NAMES = {"ak": "ak", "daa": "daa"}


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a key blob via a 0600 temp file and a rename: a crash leaves no half blob."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_ref(role: str, pub: TPM2B_PUBLIC, handle: Any, owner: Any) -> KeyRef:
    """A :class:`KeyRef` for a key this device created or loaded (``point`` for ECC)."""
    area = pub.publicArea
    point = None
    if int(area.type) == int(TPM2_ALG.ECC):
        size = 48 if int(area.parameters.eccDetail.curveID) == int(TPM2_ECC.NIST_P384) else 32
        point = point_bytes(area.unique.ecc, size)
    return KeyRef(
        role=role,
        public=pub.marshal(),
        name=bytes(pub.get_name()),
        point=point,
        esys_handle=handle,
        owner=owner,
    )


class TpmKeys(TpmSession):
    """EK, AK and DAA key handling on top of an open session."""

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
        with tpm_call("TR_FromTPMPublic(NV)"):
            nvh = esys.tr_from_tpmpublic(index)
        try:
            with tpm_call("NV_ReadPublic"):
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
                            detail={**rc_detail("NV_Read", exc), "nv_index": f"0x{index:08x}"},
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
        with tpm_call(f"CreatePrimary(EK {kind.value})"):
            handle, pub, *_ = esys.create_primary(
                TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC(ek_template(spec)), ESYS_TR.ENDORSEMENT
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
        with tpm_call("CreatePrimary(SRK)"):
            handle, *_ = esys.create_primary(
                TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC(srk_template()), ESYS_TR.OWNER
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
        expected = child_template(role)
        esys = self.esys
        have = (pub_path.exists(), priv_path.exists())
        if have == (True, True):
            try:
                pub = unmarshal_exact(TPM2B_PUBLIC, pub_path.read_bytes(), str(pub_path))
                priv = unmarshal_exact(TPM2B_PRIVATE, priv_path.read_bytes(), str(priv_path))
            except (OSError, TpmArgumentError) as exc:
                raise KeyBlobError(
                    f"cannot read the {role} key blobs: {exc}", detail={"dir": str(ddir)}
                ) from exc
            if not template_matches(expected, pub.publicArea):
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
                        detail={**rc_detail("Load", exc), "dir": str(ddir)},
                    ) from exc
        elif have == (False, False):
            ddir.mkdir(parents=True, exist_ok=True)
            with self._srk() as srk:
                with tpm_call(f"Create({role})"):
                    priv, pub, *_ = esys.create(
                        srk, TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC(expected)
                    )
                with tpm_call(f"Load({role})"):
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
                with tpm_call("FlushContext"):
                    self.esys.flush_context(ref.esys_handle)

    def _handle(self, key: KeyRef, role: str | None = None) -> Any:
        if not isinstance(key, KeyRef) or key.owner is not self or key.esys_handle is None:
            raise TpmArgumentError("key is not a loaded key of this TPM device")
        if not any(ref is key for ref in self._loaded.values()):
            raise TpmArgumentError("key was unloaded or the device was closed")
        if role is not None and key.role != role:
            raise TpmArgumentError(f"expected the {role} key, got {key.role}")
        return key.esys_handle
