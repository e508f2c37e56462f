"""The deployment bootstrap one party at a time, as docker/ runs it: every party started through
docker/entrypoint.sh with the admin-token secret, on 127.0.0.1 with SQLite instead of compose.

The entrypoint runs ``ecash-tpm deploy init-party`` before ``serve`` (keys, certificate from the
central bank over HTTP, Hop exported for the bank), so the same stack comes up here without a
Docker engine; a restart keeps keys and certificates and refuses a central bank with another root.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ecash_tpm.deploy.bootstrap import write_config
from ecash_tpm.deploy.processes import free_port
from ecash_tpm.procutil import die_with_parent

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


ROLES = {"centralbank": "centralbank", "supervision": "supervision", "issuer": "issuer",
         "bank": "bank", "merchant-a": "merchant"}  # fmt: skip


@dataclass
class Stack:
    """The parties' URLs, data dirs, environment and processes (stopped by the fixture)."""

    tmp: Path
    url: dict[str, str]
    data: dict[str, Path]
    env: dict[str, str]
    health: dict[str, str]  # the plain /healthz listeners (healthz_port), as compose uses them
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, party: str) -> None:
        """``ecash-tpm <role> serve`` through the entrypoint; wait until it answers."""
        log_path = self.tmp / f"{party}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                ["sh", str(ENTRYPOINT), "ecash-tpm", ROLES[party], "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.health[party]}/healthz", timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"{party} did not come up"
            time.sleep(0.1)

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ecash_tpm", *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    ports = {p: free_port() for p in ROLES}
    hz = {p: free_port() for p in ROLES}
    url = {p: f"https://127.0.0.1:{port}" for p, port in ports.items()}  # TLS by default
    health = {p: f"http://127.0.0.1:{port}" for p, port in hz.items()}
    data = {p: tmp_path / p for p in ROLES}
    config = write_config(
        tmp_path / "ecash-tpm.toml",
        {
            "centralbank": {"port": ports["centralbank"], "data_dir": data["centralbank"],
                            "init_if_missing": True, "healthz_port": hz["centralbank"]},
            "supervision": {"port": ports["supervision"], "data_dir": data["supervision"],
                            "issuer_url": url["issuer"], "healthz_port": hz["supervision"]},
            "issuer": {"port": ports["issuer"], "data_dir": data["issuer"],
                       "supervision_url": url["supervision"], "healthz_port": hz["issuer"]},
            "bank": {"port": ports["bank"], "data_dir": data["bank"], "issuer_url": url["issuer"],
                     "supervision_url": url["supervision"], "denominations": [1, 2, 4],
                     "issuer_secrets_dir": data["issuer"] / "issuer-keys",
                     "healthz_port": hz["bank"]},
            "merchant": {"port": ports["merchant-a"], "data_dir": data["merchant-a"],
                         "name": "merchant-a", "bank_url": url["bank"],
                         "issuer_url": url["issuer"], "healthz_port": hz["merchant-a"]},
        },
    )  # fmt: skip
    token = tmp_path / "admin-token"
    token.write_text("a-test-admin-token-of-enough-length\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        ECASH_TPM_CONFIG=str(config),
        ECASH_TPM_DEPLOY_TOKEN_FILE=str(token),
        ECASH_TPM_DEPLOY_CENTRAL_BANK=url["centralbank"],
        ECASH_TPM_DEPLOY_SUPERVISION=url["supervision"],
    )
    stack = Stack(tmp_path, url, data, env, health)
    try:
        yield stack
    finally:
        for proc in reversed(stack.procs):
            proc.terminate()
        for proc in stack.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_parties_bootstrap_through_the_entrypoint(stack: Stack) -> None:
    for party in ROLES:  # in the order compose's dependencies give
        stack.start(party)
    for path in (
        stack.data["supervision"] / "supervision-cert.pem",
        stack.data["issuer"] / "issuer-cert.pem",
        stack.data["bank"] / "bank.crt",
        stack.data["merchant-a"] / "merchant-cert.pem",
    ):
        assert path.read_text().startswith("-----BEGIN CERTIFICATE-----"), path
    # every party got its TLS key and certificate at bootstrap (0600) and serves TLS 1.3
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.deploy.tls import probe
    from ecash_tpm.pki import tls_identity
    from ecash_tpm.service.tls import client_context

    root = stack.data["centralbank"] / "root-cert.pem"
    context = client_context(root)
    for party, role in ROLES.items():
        for name in ("tls-cert.pem", "tls-key.pem"):
            assert (stack.data[party] / name).stat().st_mode & 0o777 == 0o600, (party, name)
        seen = probe(stack.url[party], context)
        name = "centralbank" if party == "centralbank" else party if role == "merchant" else role
        assert (seen.protocol, seen.identity) == ("TLSv1.3", tls_identity(role, name)), party
    with BankClient(stack.url["bank"], tls=context, expect=("bank", "bank")) as bank:
        keysets = bank.get_json("/v1/keysets")["keysets"]
    assert sorted(k["body"]["value"] for k in keysets) == [1, 2, 4]
    # the operator registers the running shop at the bank (certificate checked on the way)
    done = stack.cli("deploy", "register-merchant", "--merchant-url", stack.url["merchant-a"],
                     "--merchant-name", "merchant-a", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["merchant_id"] == "merchant-a"

    # a restart keeps the identity; another central bank (other root) is refused
    token = stack.env["ECASH_TPM_DEPLOY_TOKEN_FILE"]
    common = ["deploy", "init-party", "--role", "bank", "--json", "--admin-token-file", token,
              "--central-bank", stack.url["centralbank"]]  # fmt: skip
    again = stack.cli(*common, "--supervision-url", stack.url["supervision"])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["certificate"]["issued_now"] is False
    other = stack.cli(*common, "--root-fingerprint", "00" * 32)
    assert other.returncode == 1
    assert json.loads(other.stdout)["error"]["code"] == "deploy.failed"
