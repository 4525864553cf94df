"""Typed, self-validating settings of the guard (precedence: CLI > DERMASSIST_* variable > default)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base.errors import ConfigError
from ..base.settings import Settings

# gRPC channel options that lift the message size limits (images and masks travel whole) between the guard and
# its own loopback tritonserver; the public front bounds what it receives (``max_request_mib``).
UNLIMITED_MESSAGES = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
MIB = 1024 * 1024

RECOVERY_MODES = ("reload", "restart")


@dataclass(frozen=True)
class GuardConfig(Settings):
    """TLS of the public gRPC front, where the audit trail goes, and how faults are found and healed.

    ``tls_cert``/``tls_key`` turn TLS on; ``tls_client_ca`` adds mutual TLS (clients must present a
    certificate that CA signed). ``recovery`` is how a broken step is healed: ``reload`` the model
    through the repository API (seconds; see docs/operations.md), or ``restart`` tritonserver.
    """

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    audit_log: str = "-"  # "-" = stdout, else a file the lines are appended to
    recovery: str = "reload"
    max_reloads: int = 3  # reloads leave Triton's unload of the broken instance hanging: restart after this many
    scan_interval_s: float = 0.2  # how often the stub processes are looked at
    canary_interval_s: float = 5.0  # a canary inference this often while all is well
    canary_timeout_s: float = 10.0
    # A canary that times out behind a client call Triton has worked on for less than this is "busy": one batch of
    # 32 large pictures answers nothing for minutes on a CPU. Held longer with no answer since, it is a hang.
    busy_limit_s: float = 300.0
    hold_s: float = 30.0  # longest a request waits for readiness while the guard recovers
    # On SIGTERM the front stops taking calls and gives those in flight this long to be answered (a batch of 32
    # takes about 13 s on two CPU cores, and calls queue behind it); keep it under the orchestrator's grace period.
    drain_s: float = 30.0
    # Largest request the public port reads: a batch of 32 phone JPEGs is a few tens of MiB, one uncompressed
    # 50-megapixel TIFF 150 MiB; beyond it gRPC refuses the call (RESOURCE_EXHAUSTED) before it is held in memory.
    max_request_mib: int = 256
    # Close client connections after this many ms (0: never) so clients reconnect through the load
    # balancer and new pods get traffic; the grace lets calls in flight finish (Triton's flag names).
    grpc_max_connection_age: int = 0
    grpc_max_connection_age_grace: int = 0

    def __post_init__(self) -> None:
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            value = getattr(self, name)
            if value is None:
                continue
            path = Path(value)
            object.__setattr__(self, name, path)
            if not path.is_file():
                raise ConfigError(f"{name} file {path} does not exist; pass the path of a PEM file")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together (the server certificate and its private key); "
                              f"got tls_cert={self.tls_cert}, tls_key={self.tls_key}")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_client_ca (mutual TLS) needs tls_cert and tls_key too")
        if self.recovery not in RECOVERY_MODES:
            raise ConfigError(f"recovery must be one of {', '.join(RECOVERY_MODES)}, got {self.recovery!r}")
        if isinstance(self.max_request_mib, bool) or not isinstance(self.max_request_mib, int) \
                or not 1 <= self.max_request_mib <= 2047:
            raise ConfigError(f"max_request_mib must be a whole number of MiB from 1 to 2047 (gRPC's limit is under "
                              f"2 GiB), got {self.max_request_mib!r}")
        if self.max_reloads < 0:
            raise ConfigError(f"max_reloads must be >= 0, got {self.max_reloads}")
        for name in ("scan_interval_s", "canary_interval_s", "canary_timeout_s", "busy_limit_s", "hold_s",
                     "drain_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        for name in ("grpc_max_connection_age", "grpc_max_connection_age_grace"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 milliseconds (0: unlimited), got {getattr(self, name)}")
        if not self.audit_log:
            raise ConfigError("audit_log must be '-' (stdout) or a file path; the audit trail cannot be turned off")

    def server_options(self) -> list[tuple[str, int]]:
        """gRPC server options of the front: requests up to ``max_request_mib``, answers of any size, connection
        ageing when asked."""
        options: list[tuple[str, int]] = [("grpc.max_send_message_length", -1),
                                          ("grpc.max_receive_message_length", self.max_request_mib * MIB)]
        if self.grpc_max_connection_age:
            options.append(("grpc.max_connection_age_ms", self.grpc_max_connection_age))
        if self.grpc_max_connection_age_grace:
            options.append(("grpc.max_connection_age_grace_ms", self.grpc_max_connection_age_grace))
        return options

    @property
    def tls(self) -> bool:
        """Whether the front serves gRPC over TLS."""
        return self.tls_cert is not None

    @property
    def mutual_tls(self) -> bool:
        """Whether clients must present a certificate."""
        return self.tls_client_ca is not None
