"""Typed, self-validating settings of the embedded server (precedence: CLI > environment > default)."""
from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .repository import SOURCE_REPOSITORY
from .settings import DEFAULT, ENVIRONMENT, FLAG, Settings, flag_name, setting_names, value_source, variable_name

logger = logging.getLogger(__name__)

PROFILES = ("embedded", "gpu")
MODEL_CONTROL_MODES = ("none", "explicit")
# Everything but inference, health and metadata sits behind the admin key (ARCHITECTURE.md).
RESTRICTED_APIS = ("model-repository", "model-config", "statistics", "shared-memory", "trace", "logging")
# Triton checks `triton-grpc-protocol-<name>` on gRPC and `<name>` on HTTP.
ADMIN_KEY_NAME = "admin-key"
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_KEY_NAME}"
HTTP_ADMIN_HEADER = ADMIN_KEY_NAME
#: The TCP ports a server or the demo page can be given.
TCP_PORTS = range(1, 65536)


#: The command that makes a key (the admin key, the audit digest key), as messages quote it.
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def read_secret_file(path: Path, what: str) -> str:
    """The text of a secret file (a mounted Kubernetes/compose secret), stripped of surrounding whitespace."""
    try:
        value = Path(path).read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the {what} file {path}: {e}; mount the secret or fix the path") from e
    if not value:
        raise ConfigError(f"the {what} file {path} is empty; write the key into it")
    return value


def given_source(cls: type, name: str, overrides: Mapping[str, Any] | None, environ: Mapping[str, str]) -> str:
    """``value_source`` of ``cls``'s field ``name``, but DEFAULT for an empty value (an empty key is no key)."""
    source = value_source(cls, name, overrides, environ)
    value = (overrides or {}).get(name) if source == FLAG else environ.get(variable_name(cls, name))
    return DEFAULT if value is None or str(value) == "" else source


def unservable_chars(path: Path) -> list[str]:
    """The characters of ``path`` (resolved) that tritonserver 2.51 cannot run a Python step under: its backend splits
    the stub's command line on spaces (the start hangs for its whole timeout) and fails on a non-ASCII letter."""
    return sorted({c for c in str(Path(path).resolve()) if c.isspace() or not c.isascii()})


def repository_problem(path: Path, setting: str) -> str:
    """Why ``path`` cannot be the model repository (it is missing, or a file), with the fix; "" if it is a folder."""
    if path.is_dir():
        unservable = unservable_chars(path)
        if unservable:
            return (f"model repository {path} has {', '.join(map(repr, unservable))} in its path, which tritonserver "
                    "2.51 cannot serve from (a space hangs its Python steps' start; a non-ASCII letter fails their "
                    f"load); move or copy it to a path of plain ASCII without spaces, and pass that to {setting}")
        return ""
    if path.exists():
        return (f"model repository {path} is a file, not a folder; pass {setting} the folder that holds the "
                "models (e.g. model_repository/)")
    return f"model repository {path} does not exist; pass {setting} an existing folder or run `make models`"


def admin_key_ignored(key_source: str, file_source: str) -> str:
    """Which of ``admin_key`` and ``admin_key_file``, given from these sources, is ignored: "" unless both are
    given; else the one set at the lower level (the command line outranks the environment); at the same level
    the file, as documented (operations.md, "Admin key": DERMASSIST_ADMIN_KEY, else the file)."""
    if DEFAULT in (key_source, file_source):
        return ""
    return "admin_key" if file_source == FLAG and key_source == ENVIRONMENT else "admin_key_file"


def _admin_setting(name: str, source: str) -> str:
    """How ``admin_key`` or ``admin_key_file`` was given: its flag, its variable, or code (the key has no flag)."""
    if source == ENVIRONMENT:
        return variable_name(ServerConfig, name)
    return "--admin-key-file" if name == "admin_key_file" else "code"


def admin_key_origin(admin_key_file: Path | None, sources: Mapping[str, str], ignored: str) -> str:
    """Where a configured admin key came from, for the log: the setting (and file) it was read from, and the one
    ignored, if any; never the key."""
    if sources["admin_key"] != DEFAULT and ignored != "admin_key":
        origin = _admin_setting("admin_key", sources["admin_key"])
    else:
        origin = f"the file {admin_key_file} ({_admin_setting('admin_key_file', sources['admin_key_file'])})"
    if ignored:
        origin += f"; {_admin_setting(ignored, sources[ignored])} is set too and is ignored"
    return origin


@dataclass(frozen=True)
class DemoPageSettings(Settings):
    """Where ``dermassist demo`` serves its page when no flag says (``make demo`` passes none): its --host and --port,
    else DERMASSIST_DEMO_HOST and DERMASSIST_DEMO_PORT; they leave the page's own defaults (the client's
    ``DEMO_HOST`` and ``DEMO_PORT``, which this base does not import) where None."""

    demo_host: str | None = field(default=None, metadata=flag_name("--host"))
    demo_port: int | None = field(default=None, metadata=flag_name("--port"))


@dataclass(frozen=True)
class ServerConfig(Settings):
    """How to run ``tritonserver``: repository, profile, ports, admin key and start-up limits.

    The admin key guards every API but inference, health and metadata. It comes from
    ``DERMASSIST_ADMIN_KEY`` or the file ``admin_key_file`` (``--admin-key-file`` or
    ``DERMASSIST_ADMIN_KEY_FILE``), never from a command-line literal; without either a random key is
    made for this run, so the administrative APIs are closed to everyone but this process. A key file
    given on the command line wins over ``DERMASSIST_ADMIN_KEY`` (CLI > environment); given at the same
    level (both variables, or both in code), the key wins over the file.
    """

    repository: Path = SOURCE_REPOSITORY
    profile: str = "embedded"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    host: str = "127.0.0.1"
    metrics_host: str = ""  # empty: same as host
    startup_timeout_s: float = 180.0
    log_verbose: int = field(default=0, metadata=flag_name(None))
    model_control_mode: str = field(default="none", metadata=flag_name(None))
    admin_key: str = field(default="", repr=False, metadata=flag_name(None))
    admin_key_file: Path | None = None
    triton_home: Path | None = None  # a system Triton (e.g. /opt/tritonserver in NGC images); None: the wheel's

    def __post_init__(self) -> None:
        object.__setattr__(self, "repository", Path(self.repository).resolve())
        cls = type(self)
        if self.profile not in PROFILES:
            raise ConfigError(f"{setting_names(cls, 'profile')} must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        ports = {"http_port": self.http_port, "grpc_port": self.grpc_port, "metrics_port": self.metrics_port}
        for name, port in ports.items():
            if port not in TCP_PORTS:
                raise ConfigError(f"{setting_names(cls, name)} must be between 1 and {TCP_PORTS[-1]}, got {port}; "
                                  "pick a free port in that range")
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"HTTP, gRPC and metrics ports must differ, got {ports}")
        if not self.startup_timeout_s > 0:
            raise ConfigError(f"{setting_names(cls, 'startup_timeout_s')} must be positive, got {self.startup_timeout_s}")
        if self.model_control_mode not in MODEL_CONTROL_MODES:
            raise ConfigError(f"{setting_names(cls, 'model_control_mode')} must be one of "
                              f"{', '.join(MODEL_CONTROL_MODES)}, got {self.model_control_mode!r}")
        problem = repository_problem(self.repository, setting_names(cls, "repository"))
        if problem:
            raise ConfigError(problem)
        if self.triton_home is not None:
            object.__setattr__(self, "triton_home", Path(self.triton_home))
        self._resolve_admin_key()

    @classmethod
    def resolve(cls, overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> ServerConfig:
        """Build the config (flag > environment > default), where a key file given as a flag wins over
        ``DERMASSIST_ADMIN_KEY``; log at INFO where the admin key came from (never the key)."""
        environ = os.environ if environ is None else environ
        sources = {name: given_source(cls, name, overrides, environ) for name in ("admin_key", "admin_key_file")}
        ignored = admin_key_ignored(sources["admin_key"], sources["admin_key_file"])
        if ignored == "admin_key":  # the command line's file outranks the environment's key
            environ = {k: v for k, v in environ.items() if k != variable_name(cls, "admin_key")}
        config = super().resolve(overrides, environ)
        if not config.admin_key_is_generated:
            logger.info("admin key from %s", admin_key_origin(config.admin_key_file, sources, ignored))
        return config

    def _resolve_admin_key(self) -> None:
        key = self.admin_key
        if not key and self.admin_key_file is not None:
            object.__setattr__(self, "admin_key_file", Path(self.admin_key_file))
            key = read_secret_file(self.admin_key_file, "admin key")
        if not key:
            key = secrets.token_urlsafe(32)
            object.__setattr__(self, "admin_key_generated", True)
        if any(c in key for c in ",:= \t\n"):
            raise ConfigError("the admin key must not contain commas, colons, '=' or whitespace "
                              "(Triton's restricted-protocol flag cannot carry them); generate one with "
                              f"`{MAKE_A_KEY}`")
        object.__setattr__(self, "admin_key", key)

    @property
    def admin_key_is_generated(self) -> bool:
        """Whether no key was configured and a random one was made for this run."""
        return getattr(self, "admin_key_generated", False)

    @property
    def grpc_admin_headers(self) -> dict[str, str]:
        """gRPC metadata that opens the restricted APIs (tritonclient's ``headers=``)."""
        return {GRPC_ADMIN_HEADER: self.admin_key}

    @property
    def http_admin_headers(self) -> dict[str, str]:
        """HTTP headers that open the restricted APIs."""
        return {HTTP_ADMIN_HEADER: self.admin_key}

    @property
    def http_address(self) -> str:
        """host:port of the HTTP endpoint (as tritonclient.http takes it)."""
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        """host:port of the gRPC endpoint."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def ready_url(self) -> str:
        """The HTTP readiness URL as this machine reaches it: the bound address, or loopback when it binds every one."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.http_port}/v2/health/ready"
