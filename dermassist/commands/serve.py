"""``dermassist serve``: run Triton behind the guard in the foreground until SIGINT/SIGTERM.

tritonserver listens on loopback only; the public gRPC port is the guard's front (TLS, audit
trail, truthful readiness), the public HTTP port answers the health probes, and the metrics port
is Triton's.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)


# ServerConfig fields set by add_server_arguments (serve's --host is one more; demo's --host is the page's).
SERVER_FIELDS = ("repository", "profile", "http_port", "grpc_port", "metrics_port", "startup_timeout_s")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The embedded server's flags, shared by ``serve`` and ``demo`` (each falls back to DERMASSIST_*, then the default)."""
    from ..base.server_config import PROFILES, ServerConfig
    from ..base.settings import setting_help

    parser.add_argument("--repository", help=setting_help(ServerConfig, "repository", "model repository"))
    parser.add_argument("--profile", choices=PROFILES, help=setting_help(ServerConfig, "profile", "config profile"))
    parser.add_argument("--http-port", type=int,
                        help=setting_help(ServerConfig, "http_port", "HTTP port (serve: health probes only)"))
    parser.add_argument("--grpc-port", type=int, help=setting_help(ServerConfig, "grpc_port", "gRPC port"))
    parser.add_argument("--metrics-port", type=int, help=setting_help(ServerConfig, "metrics_port", "Triton metrics port"))
    parser.add_argument("--startup-timeout-s", type=float,
                        help=setting_help(ServerConfig, "startup_timeout_s", "seconds to wait for Triton readiness"))


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``serve`` (each falls back to its DERMASSIST_* variable, then the default)."""
    from ..base.server_config import ServerConfig
    from ..base.settings import setting_help
    from ..guard.config import RECOVERY_MODES, GuardConfig

    add_server_arguments(parser)
    parser.add_argument("--host", help=setting_help(ServerConfig, "host", "address the public ports bind"))
    parser.add_argument("--metrics-host",
                        help=setting_help(ServerConfig, "metrics_host", "address the metrics port binds (none: --host)"))
    tls = parser.add_argument_group("the public gRPC port: TLS, connections")
    tls.add_argument("--tls-cert", help=setting_help(GuardConfig, "tls_cert", "server certificate chain (PEM); turns TLS on"))
    tls.add_argument("--tls-key", help=setting_help(GuardConfig, "tls_key", "private key of that certificate (PEM)"))
    tls.add_argument("--tls-client-ca", help=setting_help(GuardConfig, "tls_client_ca",
                                                         "CA that signs client certificates (PEM); turns mutual TLS on"))
    tls.add_argument("--grpc-max-connection-age", type=int, metavar="MS",
                     help=setting_help(GuardConfig, "grpc_max_connection_age",
                                       "close client connections after MS ms so clients rebalance (0: never)"))
    tls.add_argument("--grpc-max-connection-age-grace", type=int, metavar="MS",
                     help=setting_help(GuardConfig, "grpc_max_connection_age_grace",
                                       "grace for calls in flight when a connection is aged out"))
    tls.add_argument("--grpc-min-ping-interval-ms", type=int, metavar="MS",
                     help=setting_help(GuardConfig, "grpc_min_ping_interval_ms",
                                       "clients may send keepalive pings this often (faster: GOAWAY after two strikes)"))
    tls.add_argument("--max-request-mib", type=int, metavar="MIB",
                     help=setting_help(GuardConfig, "max_request_mib",
                                       "largest request the public port reads, in MiB (larger: RESOURCE_EXHAUSTED)"))
    tls.add_argument("--max-inflight-mib", type=int, metavar="MIB",
                     help=setting_help(GuardConfig, "max_inflight_mib",
                                       "most MiB of inference requests held at once (over it: UNAVAILABLE, retried)"))
    ops = parser.add_argument_group("admin key, audit trail and self-healing")
    ops.add_argument("--admin-key-file", help=setting_help(
        ServerConfig, "admin_key_file",
        "file holding the key of the restricted APIs (or DERMASSIST_ADMIN_KEY; none: a random key for this run, i.e. closed)"))
    ops.add_argument("--audit-log", help=setting_help(GuardConfig, "audit_log",
                                                      "file the audit JSON lines are appended to, or - for stdout"))
    ops.add_argument("--audit-digest-key-file", metavar="FILE", help=setting_help(
        GuardConfig, "audit_digest_key_file", "file holding a site key: the audit trail records each picture's "
        "HMAC-SHA256 under it, not its SHA-256"))
    ops.add_argument("--recovery", choices=RECOVERY_MODES,
                     help=setting_help(GuardConfig, "recovery", "how a broken step is healed"))
    ops.add_argument("--canary-interval-s", type=float, help=setting_help(GuardConfig, "canary_interval_s",
                                                                          "seconds between canary inferences"))
    ops.add_argument("--canary-timeout-s", type=float, help=setting_help(GuardConfig, "canary_timeout_s",
                                                                         "deadline of a canary inference"))
    ops.add_argument("--busy-limit-s", type=float, help=setting_help(
        GuardConfig, "busy_limit_s", "a canary that times out behind a client call held for less than this is busy, not "
        "a fault"))
    ops.add_argument("--drain-s", type=float, help=setting_help(
        GuardConfig, "drain_s", "on SIGTERM, seconds the calls in flight get to be answered before they are cancelled"))
    ops.add_argument("--reload-timeout-s", type=float, help=setting_help(
        GuardConfig, "reload_timeout_s", "deadline of a whole reload, every model it touches; past it tritonserver is restarted"))
    ops.add_argument("--max-unready-s", type=float, help=setting_help(
        GuardConfig, "max_unready_s", "liveness turns false once the guard has been unready this long without healing"))
    ops.add_argument("--exit-when-not-live", action="store_true", default=None, help=setting_help(
        GuardConfig, "exit_when_not_live", "exit non-zero once not live (docker-compose restarts only a process that exits)"))
    ops.add_argument("--triton-home", help=setting_help(ServerConfig, "triton_home",
                                                        "a system Triton install (e.g. /opt/tritonserver); none: the wheel's"))


def run(args: argparse.Namespace) -> int:
    """Start Triton and the guard, serve until SIGINT/SIGTERM, stop both."""
    import asyncio

    from ..base.server_config import ServerConfig
    from ..guard.background import serve_until_signal
    from ..guard.config import GuardConfig
    from ..guard.guard import Guard

    overrides = vars(args)
    config = ServerConfig.resolve(overrides)
    guard_config = GuardConfig.resolve(overrides)
    if config.admin_key_is_generated:
        logger.info("no admin key configured (DERMASSIST_ADMIN_KEY or --admin-key-file): the restricted APIs "
                    "(repository, config, statistics, shared memory, trace, logging) are closed for this run")
    guard = Guard(config, guard_config)
    asyncio.run(serve_until_signal(guard))
    logger.info("tritonserver stopped")
    return 0
