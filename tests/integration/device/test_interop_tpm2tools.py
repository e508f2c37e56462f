"""Interop with a real (emulated) TPM through tpm2-tools: the pure verifier against the TPM.

* a quote made by ``tpm2_quote`` passes :func:`verify_quote`;
* our :func:`make_credential` output is accepted by ``tpm2_activatecredential`` and yields the
  same secret, for the RSA-2048 EK and for the high-range ECC P-384 EK;
* the EK certificates read from NV verify against the swtpm_localca chain of this very TPM.

The module provisions its own swtpm (fixture ``tools_swtpm``): hermetic CA in a temporary
XDG_CONFIG_HOME, TCP on 127.0.0.1 only, stopped by the pid in its pid file, directory removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from ecash_tpm.attest import (
    ek_public_matches_certificate,
    make_credential,
    parse_tpm2b_public,
    verify_ek_certificate,
    verify_quote,
)
from ecash_tpm.attest.wire import u32

pytestmark = [pytest.mark.swtpm, pytest.mark.tpm2tools]

TOOLS = ("swtpm", "swtpm_setup", "tpm2_quote", "tpm2_activatecredential", "tpm2_createak")
EK_RSA_HANDLE = "0x81010001"
EK_ECC_HANDLE = "0x81010016"
EK_RSA_CERT_NV = "0x01c00002"
EK_ECC_CERT_NV = "0x01c00016"
CREDENTIAL_BLOB_MAGIC = 0xBADCC0DE  # tpm2-tools credential file: magic, version, ID, secret
CREDENTIAL_BLOB_VERSION = 1


@dataclass
class ToolsSwtpm:
    """A running swtpm with EK certificates, and a way to run tpm2-tools against it."""

    tcti: str
    state_dir: Path
    work: Path
    ca_dir: Path
    env: dict[str, str]

    def ca_certificates(self) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
        """(roots, intermediates) of this TPM's swtpm_localca."""
        root = x509.load_pem_x509_certificate(
            (self.ca_dir / "swtpm-localca-rootca-cert.pem").read_bytes()
        )
        inter = x509.load_pem_x509_certificate((self.ca_dir / "issuercert.pem").read_bytes())
        return [root], [inter]

    def tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one tpm2-tools command in the work dir, then flush what it left loaded."""
        proc = subprocess.run(
            list(args), cwd=self.work, env=self.env, capture_output=True, text=True, timeout=60
        )
        for flag in ("-t", "-s"):
            subprocess.run(
                ["tpm2_flushcontext", flag],
                cwd=self.work,
                env=self.env,
                capture_output=True,
                timeout=60,
            )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args[0]} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def path(self, name: str) -> Path:
        return self.work / name


def _free_port_pair() -> int:
    """A port P with P and P+1 free on 127.0.0.1 (server and control channel)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}): {proc.stderr}")


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def tools_swtpm() -> Iterator[ToolsSwtpm]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    tmp = Path(tempfile.mkdtemp(prefix="ecash-attest-interop-"))
    pid_file = tmp / "swtpm.pid"
    try:
        env = dict(os.environ, XDG_CONFIG_HOME=str(tmp), TSS2_LOG="all+none")
        _run(["swtpm_setup", "--create-config-files", "overwrite,root"], env, tmp)
        state = tmp / "state"
        state.mkdir()
        _run(
            [
                "swtpm_setup", "--tpm2", "--tpmstate", str(state),
                "--config", str(tmp / "swtpm_setup.conf"),
                "--create-ek-cert", "--create-platform-cert", "--lock-nvram",
                "--overwrite", "--ecc", "--logfile", str(tmp / "swtpm_setup.log"),
            ],
            env, tmp,
        )  # fmt: skip
        conf = (tmp / "swtpm-localca.conf").read_text()
        ca_dir = Path(
            next(line.split("=", 1)[1].strip() for line in conf.splitlines()
                 if line.startswith("statedir"))
        )  # fmt: skip
        for attempt in range(3):  # another process may grab the port between probe and bind
            port = _free_port_pair()
            try:
                _run(
                    [
                        "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                        "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                        "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                        "--flags", "not-need-init,startup-clear",
                        "--daemon", "--pid", f"file={pid_file}",
                    ],
                    env, tmp,
                )  # fmt: skip
                break
            except AssertionError:
                if attempt == 2:
                    raise
        tcti = f"swtpm:host=127.0.0.1,port={port}"
        work = tmp / "work"
        work.mkdir()
        yield ToolsSwtpm(tcti, state, work, ca_dir, dict(env, TPM2TOOLS_TCTI=tcti))
    finally:
        _stop(pid_file)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ak(tools_swtpm: ToolsSwtpm) -> tuple[bytes, bytes]:
    """An ECDSA P-256 AK made by tpm2_createak under the RSA EK: (TPM2B_PUBLIC, Name)."""
    tools_swtpm.tool(
        "tpm2_createak", "-C", EK_RSA_HANDLE, "-c", "ak.ctx", "-G", "ecc", "-g", "sha256",
        "-s", "ecdsa", "-u", "ak.pub", "-n", "ak.name",
    )  # fmt: skip
    return tools_swtpm.path("ak.pub").read_bytes(), tools_swtpm.path("ak.name").read_bytes()


def test_ek_certificates_from_nv_verify(tools_swtpm: ToolsSwtpm) -> None:
    roots, inters = tools_swtpm.ca_certificates()
    for nv, handle, name in (
        (EK_RSA_CERT_NV, EK_RSA_HANDLE, "ek-rsa"),
        (EK_ECC_CERT_NV, EK_ECC_HANDLE, "ek-ecc"),
    ):
        tools_swtpm.tool("tpm2_nvread", nv, "-C", "o", "-o", f"{name}.nv")
        tools_swtpm.tool("tpm2_readpublic", "-c", handle, "-o", f"{name}.pub")
        cert = verify_ek_certificate(tools_swtpm.path(f"{name}.nv").read_bytes(), roots, inters)
        ek_public_matches_certificate(cert, tools_swtpm.path(f"{name}.pub").read_bytes())


def test_tpm2_quote_passes_verify_quote(tools_swtpm: ToolsSwtpm, ak: tuple[bytes, bytes]) -> None:
    ak_public, ak_name = ak
    tools_swtpm.tool("tpm2_pcrextend", "4:sha256=" + "ab" * 32)
    nonce = os.urandom(32)
    indices = [0, 4, 7, 10]
    selection = "sha256:" + ",".join(map(str, indices))
    tools_swtpm.tool(
        "tpm2_quote", "-c", "ak.ctx", "-l", selection, "-q", nonce.hex(), "-g", "sha256",
        "-m", "quote.msg", "-s", "quote.sig",
    )  # fmt: skip
    tools_swtpm.tool("tpm2_pcrread", selection, "-o", "pcrs.bin")
    raw = tools_swtpm.path("pcrs.bin").read_bytes()
    pcrs = {i: raw[32 * k : 32 * k + 32] for k, i in enumerate(indices)}
    info = verify_quote(
        ak_public,
        tools_swtpm.path("quote.msg").read_bytes(),
        tools_swtpm.path("quote.sig").read_bytes(),
        nonce,
        pcrs,
    )
    assert info.ak_name == ak_name
    assert pcrs[4] != bytes(32)


def _activate(
    tools_swtpm: ToolsSwtpm, ek_handle: str, id_object: bytes, enc_secret: bytes, *, policy: bool
) -> subprocess.CompletedProcess[str]:
    blob = u32(CREDENTIAL_BLOB_MAGIC) + u32(CREDENTIAL_BLOB_VERSION) + id_object + enc_secret
    tools_swtpm.path("cred.blob").write_bytes(blob)
    tools_swtpm.path("secret.out").unlink(missing_ok=True)
    args = [
        "tpm2_activatecredential", "-c", "ak.ctx", "-C", ek_handle, "-i", "cred.blob",
        "-o", "secret.out",
    ]  # fmt: skip
    if not policy:
        return tools_swtpm.tool(*args, check=False)
    # Low-range EK template: adminWithPolicy, policy = PolicySecret(TPM_RH_ENDORSEMENT).
    # All in one shell so the session context survives between the tools (no flush between).
    script = (
        "set -e; tpm2_startauthsession --policy-session -S s.ctx >/dev/null;"
        " tpm2_policysecret -S s.ctx -c e >/dev/null;"
        f" {' '.join(args)} -P session:s.ctx; rc=$?; tpm2_flushcontext s.ctx; exit $rc"
    )
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tools_swtpm.work, env=tools_swtpm.env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    tools_swtpm.tool("tpm2_flushcontext", "-t", check=False)
    return proc


def test_make_credential_rsa_ek_activates(tools_swtpm: ToolsSwtpm, ak: tuple[bytes, bytes]) -> None:
    tools_swtpm.tool("tpm2_readpublic", "-c", EK_RSA_HANDLE, "-o", "ek-rsa.pub")
    ek_public = tools_swtpm.path("ek-rsa.pub").read_bytes()
    _, ak_name = ak
    secret = os.urandom(32)
    id_object, enc_secret = make_credential(ek_public, ak_name, secret)
    proc = _activate(tools_swtpm, EK_RSA_HANDLE, id_object, enc_secret, policy=True)
    assert proc.returncode == 0, proc.stderr
    assert tools_swtpm.path("secret.out").read_bytes() == secret
    # Bound to the AK's Name: a credential for another Name fails the TPM's integrity check.
    other = ak_name[:-1] + bytes([ak_name[-1] ^ 1])
    proc = _activate(tools_swtpm, EK_RSA_HANDLE, *make_credential(ek_public, other, secret),
                     policy=True)  # fmt: skip
    assert proc.returncode != 0
    assert "integrity" in proc.stderr.lower()


def test_make_credential_p384_ek_activates(
    tools_swtpm: ToolsSwtpm, ak: tuple[bytes, bytes]
) -> None:
    tools_swtpm.tool("tpm2_readpublic", "-c", EK_ECC_HANDLE, "-o", "ek-ecc.pub")
    ek_public = tools_swtpm.path("ek-ecc.pub").read_bytes()
    ek = parse_tpm2b_public(ek_public)
    assert ek.ecc.symmetric.key_bits == 256  # high-range template: AES-256, SHA-384
    _, ak_name = ak
    secret = os.urandom(32)
    id_object, enc_secret = make_credential(ek_public, ak_name, secret)
    # The high-range EK template sets userWithAuth (empty authValue), so a password session
    # authorizes the USER role ActivateCredential needs for the EK; no policy session is needed.
    proc = _activate(tools_swtpm, EK_ECC_HANDLE, id_object, enc_secret, policy=False)
    assert proc.returncode == 0, proc.stderr
    assert tools_swtpm.path("secret.out").read_bytes() == secret
    tampered = bytearray(id_object)
    tampered[-1] ^= 1
    proc = _activate(tools_swtpm, EK_ECC_HANDLE, bytes(tampered), enc_secret, policy=False)
    assert proc.returncode != 0
    assert "integrity" in proc.stderr.lower()
