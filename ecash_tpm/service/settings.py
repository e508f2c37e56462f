"""Typed per-party settings: defaults < TOML file < environment < explicit overrides.

Each party subclasses :class:`ServiceSettings`, names its TOML section and adds its own keys::

    class BankSettings(ServiceSettings):
        section: ClassVar[str] = "bank"
        port: int = 8082
        lock_period_s: int = Field(default=300, ge=1)

    settings = load_settings(BankSettings, path="ecash-tpm.toml")

One TOML file can configure every party (``[bank]``, ``[merchant]``, ...); each loader reads only
its own section. An environment variable ``ECASH_TPM_<SECTION>_<KEY>`` (e.g.
``ECASH_TPM_BANK_PORT=9000``) overrides the file; list/dict values are given as JSON. Unknown
keys in the section or under the section's environment prefix are errors (a typo in a money
service's configuration must not be silently ignored), as are ill-typed values: both raise
:class:`~ecash_tpm.errors.ConfigError` naming the key and where it came from. Relative paths in
the file are resolved against the file's directory. The settings object is immutable and is
handed to ``create_app``; nothing is read from a global.

``database_url`` (and any key a subclass lists in ``expand_variables``) may name environment
variables, ``${NAME}`` or ``$NAME`` (``$$`` is a literal ``$``), when it comes from the file or
the environment, so a password can stay out of the file::

    database_url = "postgresql://bank:${BANK_DB_PASSWORD}@db.internal:5432/bank"

A variable that is unset or empty is an error (``config.unset_variable``), never an empty
password or a path made of nothing. Command-line flags are taken literally (the shell has
already expanded them).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ecash_tpm.errors import ConfigError
from ecash_tpm.service.tls import TlsFiles

ENV_PREFIX = "ECASH_TPM_"
#: A party's TLS certificate and key in its data directory unless configured elsewhere.
TLS_CERT_FILE = "tls-cert.pem"
TLS_KEY_FILE = "tls-key.pem"
CONFIG_ENV = "ECASH_TPM_CONFIG"
S = TypeVar("S", bound="ServiceSettings")
_VARIABLE_RE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|)")


class UnsetVariableError(ConfigError):
    """A setting names an environment variable that is not set (or is empty).

    Left as it is, ``postgresql://bank:${PGPASSWORD}@...`` would try an empty or literal
    password, and ``sqlite:///${DATA}/bank.db`` would create a database in a wrong place.
    """

    code = "config.unset_variable"


def default_data_dir(section: str) -> Path:
    """``$XDG_DATA_HOME/ecash-tpm/<section>`` (``~/.local/share`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ecash-tpm" / section


def default_database_url(section: str, data_dir: Path) -> str:
    """The SQLite file a party uses when no ``database_url`` is configured."""
    return f"sqlite:///{Path(data_dir).expanduser().absolute() / (section + '.db')}"


def expand_variables(value: str, environ: Mapping[str, str], *, key: str, source: str) -> str:
    """``value`` with ``${NAME}``/``$NAME`` replaced from ``environ`` (``$$`` gives ``$``).

    Raises :class:`UnsetVariableError` for a variable that is unset or empty and ConfigError
    for a ``$`` that starts no variable name (write ``$$`` for a literal dollar sign).
    """

    def replace(match: re.Match[str]) -> str:
        dollar, braced, bare = match.groups()
        if dollar:
            return "$"
        name = braced or bare
        if not name:
            raise ConfigError(
                f"{key}: '$' must start a variable (${{NAME}} or $NAME); write $$ for a '$'",
                detail={"key": key, "source": source},
            )
        found = environ.get(name)
        if not found:
            raise UnsetVariableError(
                f"{key} names the environment variable ${name}, which is "
                + ("empty" if found == "" else "not set"),
                detail={"key": key, "variable": name, "source": source},
            )
        return found

    return _VARIABLE_RE.sub(replace, value)


class ServiceSettings(BaseModel):
    """Keys every service has. Subclasses set ``section`` and add fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    section: ClassVar[str] = "service"
    #: keys whose values from the file or the environment may name ``${VARIABLES}``
    expand_variables: ClassVar[frozenset[str]] = frozenset({"database_url"})

    host: str = Field(
        default="127.0.0.1", min_length=1, description="listen address (loopback default)"
    )
    port: int = Field(default=8080, ge=0, le=65535, description="listen port (0 = any free port)")
    data_dir: Path = Field(
        default=None,  # type: ignore[assignment]  # filled in by the model validator
        description="directory for the database and keys",
    )
    database_url: str = Field(
        default=None,  # type: ignore[assignment]
        description="sqlite:///<path> or postgresql://...; default: SQLite in data_dir",
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_party_body_bytes: int | None = Field(
        default=None,
        ge=1024,
        le=128 * 1024 * 1024,
        description="larger body limit for callers with a verified TLS client certificate "
        "(another party); default: max_body_bytes",
    )
    body_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="longest wait for the next request body chunk (and, over TLS, for a "
        "complete request head)",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="TLS certificate (PEM); default: data_dir/tls-cert.pem"
    )
    tls_key_file: Path | None = Field(
        default=None, description="TLS private key (PEM); default: data_dir/tls-key.pem"
    )
    crl_file: Path | None = Field(
        default=None, description="central bank CRL (PEM) checked for TLS client certificates"
    )
    crl_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="central bank base URL: every certificate this party accepts is checked "
        "against its current CRL (GET /v1/crl); overrides crl_file for that check",
    )
    centralbank_name: str = Field(
        default="centralbank",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of the central bank's TLS certificate",
    )
    crl_refresh_s: int = Field(
        default=60, ge=0, le=86400, description="fetch the CRL again after this many seconds"
    )
    insecure_http: bool = Field(
        default=False, description="serve plain HTTP (local experiments; refused with a cert)"
    )
    healthz_port: int | None = Field(
        default=None, ge=0, le=65535, description="extra plain-HTTP port serving only /healthz"
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="server processes sharing the listen socket and the database (issue 13)",
    )
    db_lock_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="longest wait of a request for a database lock or a pool slot; then 503",
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if values.get("data_dir") is None:
            values["data_dir"] = default_data_dir(cls.section)
        if values.get("database_url") is None:
            values["database_url"] = default_database_url(cls.section, Path(values["data_dir"]))
        for key, file_name in (("tls_cert_file", TLS_CERT_FILE), ("tls_key_file", TLS_KEY_FILE)):
            if values.get(key) is None:
                values[key] = Path(values["data_dir"]).expanduser() / file_name
        return values

    def tls_files(self, root: Path) -> TlsFiles | None:
        """The files to serve TLS with (trusting ``root`` for client certificates), or None
        for plain HTTP.

        Plain HTTP needs ``insecure_http`` and is refused while a TLS certificate is configured
        or present (``config.insecure_http_refused``): a party that has a certificate must never
        end up serving in the clear by a forgotten flag. Without either, the party cannot start
        (``config.tls_missing``): TLS is the default, not something to opt into.
        """
        cert = self.tls_cert_file or self.data_dir / TLS_CERT_FILE
        key = self.tls_key_file or self.data_dir / TLS_KEY_FILE
        default_cert = self.data_dir / TLS_CERT_FILE
        if self.insecure_http:
            if cert.exists() or cert != default_cert:
                raise ConfigError(
                    "insecure_http is refused while a TLS certificate is configured: remove "
                    "the flag (or the certificate) to choose",
                    code="config.insecure_http_refused",
                    detail={"tls_cert_file": str(cert)},
                )
            return None
        missing = [str(path) for path in (cert, key, root) if not path.is_file()]
        if self.crl_file is not None and not self.crl_file.is_file():
            missing.append(str(self.crl_file))
        if missing:
            raise ConfigError(
                f"[{self.section}] has no TLS certificate: issue one (ecash-tpm "
                f"{self.section} cert renew) or run with --insecure-http for local experiments",
                code="config.tls_missing",
                detail={"missing": missing},
            )
        return TlsFiles(
            cert=cert,
            key=key,
            root=root,
            crl=self.crl_file,
            header_timeout_s=self.body_read_timeout_s,  # half-sent headers: same patience
        )

    def uses_default_database(self) -> bool:
        """True when ``database_url`` is the SQLite file in ``data_dir`` that nobody configured
        (what a forgotten ``ECASH_TPM_<SECTION>_DATABASE_URL`` silently falls back to)."""
        return self.database_url == default_database_url(self.section, self.data_dir)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper().replace("-", "_").replace(".", "_")


def _wants_json(annotation: Any) -> bool:
    """True for fields whose environment value must be JSON (lists, dicts, models)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_wants_json(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin is typing.Annotated:
        return _wants_json(typing.get_args(annotation)[0])
    if origin is typing.Literal:  # Literal[2048, 3072]: "3072" from the environment is a number
        return not any(isinstance(a, str) for a in typing.get_args(annotation))
    if origin in (list, tuple, set, frozenset, dict):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_path(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_path(a) for a in typing.get_args(annotation))
    return annotation is Path


def _read_toml(path: Path, section: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError("configuration file not found", detail={"path": str(path)}) from exc
    except OSError as exc:
        raise ConfigError("cannot read configuration file", detail={"path": str(path)}) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"configuration file is not valid TOML: {exc}", detail={"path": str(path)}
        ) from exc
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(
            f"[{section}] must be a table", detail={"path": str(path), "section": section}
        )
    return dict(table)


def load_settings(
    cls: type[S],
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> S:
    """Build ``cls`` from defaults, the TOML ``path`` (or ``$ECASH_TPM_CONFIG``), ``environ``
    (``os.environ`` by default) and ``overrides`` (e.g. CLI flags; ``None`` values are skipped).
    """
    env = os.environ if environ is None else environ
    section = cls.section
    fields = cls.model_fields
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    unknown: list[dict[str, str]] = []

    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is not None:
        file_path = Path(path).expanduser()
        for key, value in _read_toml(file_path, section).items():
            if key not in fields:
                unknown.append({"key": key, "source": f"{file_path} [{section}]"})
                continue
            if _is_path(fields[key].annotation) and isinstance(value, str):
                candidate = Path(value).expanduser()
                value = candidate if candidate.is_absolute() else file_path.parent / candidate
            values[key] = value
            sources[key] = f"{file_path} [{section}]"

    prefix = _env_name(section, "")
    env_keys = {_env_name(section, key): key for key in fields}
    for name, raw in env.items():
        if not name.startswith(prefix):
            continue
        field_name = env_keys.get(name)
        if field_name is None:
            unknown.append({"key": name[len(prefix) :].lower(), "source": f"${name}"})
            continue
        key = field_name
        if _wants_json(fields[key].annotation):
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"${name} must be JSON for this setting",
                    detail={"section": section, "key": key, "source": f"${name}"},
                ) from exc
        else:
            values[key] = raw
        sources[key] = f"${name}"

    for key in cls.expand_variables:
        if isinstance(values.get(key), str):
            values[key] = expand_variables(values[key], env, key=key, source=sources[key])

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in fields:
            unknown.append({"key": key, "source": "override"})
            continue
        values[key] = value
        sources[key] = "override"

    if unknown:
        raise ConfigError(
            f"unknown setting(s) for [{section}]: " + ", ".join(u["key"] for u in unknown),
            detail={"section": section, "unknown": unknown, "known": sorted(fields)},
        )
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            loc = err.get("loc", ())
            key = str(loc[0]) if loc else ""
            errors.append(
                {"key": key, "msg": err.get("msg", ""), "source": sources.get(key, "default")}
            )
        summary = "; ".join(f"{e['key']}: {e['msg']} ({e['source']})" for e in errors)
        raise ConfigError(
            f"invalid settings for [{section}]: {summary}",
            detail={"section": section, "errors": errors},
        ) from None
