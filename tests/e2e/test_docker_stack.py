"""Build the image and run the parties in Docker — only where a Docker engine is reachable.

The development machines have the docker client but no engine (DESIGN §7), so these tests
skip there with the reason; CI runners with an engine run them. The image is built with the
``docker`` CLI (BuildKit: the Dockerfile uses ``RUN --mount`` and ``COPY --chmod``, which the
SDK's classic build API does not support); containers are driven with the docker SDK
(PyPI ``docker``). Everything created is labelled and removed, volumes included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

docker = pytest.importorskip("docker", reason="docker SDK not installed (PyPI 'docker')")
if not hasattr(docker, "from_env"):
    # Without the SDK, `import docker` finds this repository's docker/ directory (the editable
    # install puts the repo root on sys.path) as a namespace package.
    pytest.skip("docker SDK not installed (PyPI 'docker')", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
LABEL = "io.ecash-tpm.test"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, ... all mean "none"
        pytest.skip(f"no Docker engine reachable: {type(exc).__name__}: {exc}")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def image(engine: Any) -> Iterator[str]:
    cli = shutil.which("docker")
    if cli is None:
        pytest.skip("the docker CLI is needed to build with BuildKit")
    tag = f"ecash-tpm:test-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [cli, "build", "-f", "docker/Dockerfile", "-t", tag, "--label", f"{LABEL}=1", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    try:
        yield tag
    finally:
        with contextlib.suppress(Exception):
            engine.images.remove(tag, force=True)


def _wait_healthy(container: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return
        if state.get("Status") == "exited":
            break
        time.sleep(1.0)
    raise AssertionError(f"{container.name} not healthy: {container.logs(tail=50).decode()}")


def test_image_has_the_tpm_stack(engine: Any, image: str) -> None:
    out = engine.containers.run(
        image,
        ["sh", "-c", "id -u && swtpm --version && tpm2_getcap -v && ecash-tpm --version"],
        remove=True,
        labels={LABEL: "1"},
    ).decode()
    uid, *rest = out.splitlines()
    assert uid != "0"
    assert any("swtpm" in line.lower() for line in rest) and "ecash-tpm" in out


def test_central_bank_container_serves_and_is_healthy(engine: Any, image: str) -> None:
    volume = engine.volumes.create(f"ecash-tpm-test-{uuid.uuid4().hex[:8]}", labels={LABEL: "1"})
    container = engine.containers.run(
        image,
        ["ecash-tpm", "centralbank", "serve"],
        detach=True,
        labels={LABEL: "1"},
        ports={"8080/tcp": ("127.0.0.1", None)},
        volumes={volume.name: {"bind": "/var/lib/ecash-tpm/centralbank", "mode": "rw"}},
        read_only=True,
        tmpfs={"/tmp": ""},
        cap_drop=["ALL"],
    )
    try:
        _wait_healthy(container)
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        root = httpx.get(f"http://127.0.0.1:{port}/v1/root", timeout=10)
        assert root.status_code == 200 and root.content.startswith(b"-----BEGIN CERTIFICATE")
    finally:
        container.remove(force=True)
        volume.remove(force=True)


def test_wallet_container_starts_its_swtpm(engine: Any, image: str) -> None:
    logs = engine.containers.run(
        image,
        ["ecash-tpm", "swtpm", "status", "--json", "--state", "/var/lib/ecash-tpm/wallet/tpm"],
        environment={"SWTPM_STATE_DIR": "/var/lib/ecash-tpm/wallet/tpm"},
        remove=True,
        stderr=True,
        labels={LABEL: "1"},
    ).decode()
    status = json.loads(logs.strip().splitlines()[-1])
    assert status["running"] and status["tcti"].startswith("swtpm:host=127.0.0.1")


def test_compose_stack_comes_up_healthy(engine: Any, image: str) -> None:
    cli = shutil.which("docker")
    probe = subprocess.run(
        [cli or "docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if cli is None or probe.returncode != 0:
        pytest.skip("`docker compose` is not installed")
    project = f"ecash-tpm-test-{uuid.uuid4().hex[:8]}"
    base = [cli, "compose", "-p", project, "-f", str(COMPOSE)]
    try:
        up = subprocess.run(
            [*base, "up", "-d", "--build", "--wait", "--wait-timeout", "600"],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert up.returncode == 0, up.stderr[-4000:]
        ps = subprocess.run(
            [*base, "ps", "--format", "json"], capture_output=True, text=True, timeout=60
        )
        lines = [json.loads(line) for line in ps.stdout.splitlines() if line.strip()]
        health = {row["Service"]: row.get("Health") for row in lines}
        assert health and all(h == "healthy" for h in health.values()), health
        bank = httpx.get("http://127.0.0.1:8082/healthz", timeout=10)
        assert bank.json()["status"] == "ok"
    finally:
        subprocess.run([*base, "down", "-v", "--remove-orphans"], capture_output=True, timeout=300)
