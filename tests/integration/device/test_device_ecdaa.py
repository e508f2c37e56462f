"""ECDAA on BN_P256 through the device layer: key, TPM2_Commit, TPM2_Sign, capability checks.

The signature equations are checked with a tiny affine BN_P256 implementation local to this
file, so the test depends only on the curve constants of DESIGN §3.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ecash_tpm.device import EcdaaUnsupportedError, TpmArgumentError, TpmCommandError, TpmDevice
from ecash_tpm.device.constants import DAA_ATTRIBUTES
from ecash_tpm.device.tpm import TPM2B_PUBLIC

pytestmark = pytest.mark.swtpm

P = 0xFFFFFFFFFFFCF0CD46E5F25EEE71A49F0CDC65FB12980A82D3292DDBAED33013
N = 0xFFFFFFFFFFFCF0CD46E5F25EEE71A49E0CDC65FB1299921AF62D536CD10B500D
G = (1, 2)
Point = tuple[int, int] | None


def _add(a: Point, b: Point) -> Point:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P == 0:
        return None
    if a == b:
        lam = 3 * a[0] * a[0] * pow(2 * a[1], -1, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return x, (lam * (a[0] - x) - a[1]) % P


def _mul(k: int, pt: Point) -> Point:
    out: Point = None
    for bit in bin(k % N)[2:]:
        out = _add(out, out)
        if bit == "1":
            out = _add(out, pt)
    return out


def _neg(pt: Point) -> Point:
    return None if pt is None else (pt[0], (-pt[1]) % P)


def _dec(b: bytes) -> tuple[int, int]:
    assert len(b) == 65 and b[0] == 4
    x, y = int.from_bytes(b[1:33], "big"), int.from_bytes(b[33:], "big")
    assert (y * y - x * x * x - 3) % P == 0, "point not on BN_P256"
    return x, y


def _enc(pt: tuple[int, int]) -> bytes:
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def _challenge(nonce_k: bytes, digest: bytes) -> int:
    return int.from_bytes(hashlib.sha256(nonce_k + digest).digest(), "big") % N


def _basename(tag: bytes) -> tuple[bytes, int, int]:
    """s2 and J = (x2, even y2) as DESIGN §3 describes (x2 = SHA-256(s2) mod p)."""
    i = 0
    while True:
        s2 = tag + i.to_bytes(4, "big")
        x = int.from_bytes(hashlib.sha256(s2).digest(), "big") % P
        rhs = (x * x * x + 3) % P
        y = pow(rhs, (P + 1) // 4, P)  # p = 3 mod 4
        if y * y % P == rhs:
            return s2, x, y if y % 2 == 0 else P - y
        i += 1


def test_bn_p256_parameters_match_design(tpm: TpmDevice) -> None:
    params = tpm.ecc_parameters("bn_p256")
    assert (params.p, params.n, params.a, params.b, params.gx, params.gy, params.h) == (
        P, N, 0, 3, 1, 2, 1
    )  # fmt: skip


def test_capability_check(tpm: TpmDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tpm.ecdaa_support() == (True, True)
    tpm.require_ecdaa()
    monkeypatch.setattr(tpm, "ecc_curves", lambda: [0x0003])  # P-256 only
    with pytest.raises(EcdaaUnsupportedError) as err:
        tpm.require_ecdaa()
    assert err.value.code == "tpm.ecdaa_unsupported"
    assert err.value.detail["missing"] == ["BN_P256"]
    with pytest.raises(EcdaaUnsupportedError):
        tpm.load_or_create_daa_key(Path(os.devnull) / "never-created")


def test_daa_key_template_and_persistence(swtpm, tmp_path: Path) -> None:
    with TpmDevice(swtpm.tcti) as dev:
        key = dev.load_or_create_daa_key(tmp_path)
    pub, _ = TPM2B_PUBLIC.unmarshal(key.public)
    area = pub.publicArea
    assert int(area.objectAttributes) == DAA_ATTRIBUTES
    assert str(area.parameters.eccDetail.scheme.scheme).lower() == "ecdaa"
    assert str(area.parameters.eccDetail.curveID).lower() == "bn_p256"
    _dec(key.point)
    with TpmDevice(swtpm.tcti) as dev:
        assert dev.load_or_create_daa_key(tmp_path).point == key.point


def test_commit_without_basename_and_sign(tpm: TpmDevice, tpm_data_dir: Path) -> None:
    key = tpm.load_or_create_daa_key(tpm_data_dir)
    q = _dec(key.point)
    com = tpm.commit(key)  # P1 = G, no s2/y2
    assert com.K is None and com.L is None and com.E is not None
    e = _dec(com.E)
    digest = os.urandom(32)
    nonce_k, s = tpm.ecdaa_sign(key, digest, com.counter)
    assert 1 <= len(nonce_k) <= 32 and 1 <= len(s) <= 32
    c = _challenge(nonce_k, digest)
    s_int = int.from_bytes(s, "big")
    assert _add(_mul(s_int, G), _neg(_mul(c, q))) == e  # E = s*G - c*Q
    with pytest.raises(TpmCommandError):  # a commit counter is good for one signature
        tpm.ecdaa_sign(key, digest, com.counter)


def test_commit_with_point_and_basename(tpm: TpmDevice, tpm_data_dir: Path) -> None:
    key = tpm.load_or_create_daa_key(tpm_data_dir)
    q = _dec(key.point)
    s2, x2, y2 = _basename(b"ecash-tpm/v1/test-basename")
    j = (x2, y2)
    p1 = _mul(12345, G)
    com = tpm.commit(key, _enc(p1), s2, y2.to_bytes(32, "big"))
    k, l_pt, e = _dec(com.K), _dec(com.L), _dec(com.E)
    digest = hashlib.sha256(b"join" + com.K).digest()
    nonce_k, s = tpm.ecdaa_sign(key, digest, com.counter)
    c = _challenge(nonce_k, digest)
    s_int = int.from_bytes(s, "big")
    assert _add(_mul(s_int, p1), _neg(_mul(c, _mul(12345, q)))) == e  # E = r*P1
    assert _add(_mul(s_int, j), _neg(_mul(c, k))) == l_pt  # L = s*J - c*K
    # the same basename always gives the same K (the linkable pseudonym)
    again = tpm.commit(key, None, s2, y2.to_bytes(32, "big"))
    assert again.K == com.K and again.E is None  # no P1: the TPM returns no E


def test_commit_argument_checks(tpm: TpmDevice, tpm_data_dir: Path) -> None:
    key = tpm.load_or_create_daa_key(tpm_data_dir)
    with pytest.raises(TpmArgumentError):
        tpm.commit(key, b"\x02" + bytes(32))  # compressed point
    with pytest.raises(TpmArgumentError):
        tpm.commit(key, None, b"s2 without y2")
    with pytest.raises(TpmArgumentError):
        tpm.ecdaa_sign(key, bytes(31), 1)
    ak = tpm.load_or_create_ak(tpm_data_dir)
    with pytest.raises(TpmArgumentError):
        tpm.commit(ak)
