"""Typed, self-validating settings of the embedded server (precedence: CLI > environment > default)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .repository import SOURCE_REPOSITORY
from .settings import Settings

PROFILES = ("embedded", "gpu")
MODEL_CONTROL_MODES = ("none", "explicit")
# Everything but inference, health and metadata sits behind the admin key (ARCHITECTURE.md).
RESTRICTED_APIS = ("model-repository", "model-config", "statistics", "shared-memory", "trace", "logging")
# Triton checks `triton-grpc-protocol-<name>` on gRPC and `<name>` on HTTP.
ADMIN_KEY_NAME = "admin-key"
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_KEY_NAME}"
HTTP_ADMIN_HEADER = ADMIN_KEY_NAME


def read_secret_file(path: Path, what: str) -> str:
    """The first line of a secret file (a mounted Kubernetes/compose secret), stripped."""
    try:
        value = Path(path).read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the {what} file {path}: {e}; mount the secret or fix the path") from e
    if not value:
        raise ConfigError(f"the {what} file {path} is empty; write the key into it")
    return value


@dataclass(frozen=True)
class ServerConfig(Settings):
    """How to run ``tritonserver``: repository, profile, ports, admin key and start-up limits.

    The admin key guards every API but inference, health and metadata. It comes from
    ``DERMASSIST_ADMIN_KEY`` or the file ``admin_key_file`` (``DERMASSIST_ADMIN_KEY_FILE``), never
    from a command-line literal; without either a random key is made for this run, so the
    administrative APIs are closed to everyone but this process.
    """

    repository: Path = SOURCE_REPOSITORY
    profile: str = "embedded"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    host: str = "127.0.0.1"
    metrics_host: str = ""  # empty: same as host
    startup_timeout_s: float = 180.0
    log_verbose: int = 0
    model_control_mode: str = "none"
    admin_key: str = field(default="", repr=False)
    admin_key_file: Path | None = None
    triton_home: Path | None = None  # a system Triton (e.g. /opt/tritonserver in NGC images); None: the wheel's

    def __post_init__(self) -> None:
        object.__setattr__(self, "repository", Path(self.repository).resolve())
        if self.profile not in PROFILES:
            raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        ports = {"http_port": self.http_port, "grpc_port": self.grpc_port, "metrics_port": self.metrics_port}
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ConfigError(f"{name} must be between 1 and 65535, got {port}")
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"HTTP, gRPC and metrics ports must differ, got {ports}")
        if not self.startup_timeout_s > 0:
            raise ConfigError(f"startup_timeout_s must be positive, got {self.startup_timeout_s}")
        if self.model_control_mode not in MODEL_CONTROL_MODES:
            raise ConfigError(f"model_control_mode must be one of {', '.join(MODEL_CONTROL_MODES)}, "
                              f"got {self.model_control_mode!r}")
        if not self.repository.is_dir():
            raise ConfigError(
                f"model repository {self.repository} does not exist; pass --repository or run `make models`"
            )
        if self.triton_home is not None:
            object.__setattr__(self, "triton_home", Path(self.triton_home))
        self._resolve_admin_key()

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
                              "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
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
