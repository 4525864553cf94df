"""Typed, self-validating settings of the embedded server (precedence: CLI > environment > default)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .repository import SOURCE_REPOSITORY
from .settings import resolve_values

PROFILES = ("embedded", "gpu")
ENV_PREFIX = "DERMASSIST_"


@dataclass(frozen=True)
class ServerConfig:
    """How to run ``tritonserver``: repository, profile, ports and start-up limits."""

    repository: Path = SOURCE_REPOSITORY
    profile: str = "embedded"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    host: str = "127.0.0.1"
    startup_timeout_s: float = 180.0
    log_verbose: int = 0

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
        if not self.repository.is_dir():
            raise ConfigError(
                f"model repository {self.repository} does not exist; pass --repository or run `make models`"
            )

    @property
    def http_address(self) -> str:
        """host:port of the HTTP endpoint (as tritonclient.http takes it)."""
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        """host:port of the gRPC endpoint."""
        return f"{self.host}:{self.grpc_port}"

    @classmethod
    def resolve(cls, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> "ServerConfig":
        """Build a config from CLI overrides (None means unset), then DERMASSIST_* variables, then defaults."""
        return cls(**resolve_values(cls, ENV_PREFIX, overrides, environ))

