"""``dermassist serve``: run the embedded Triton server in the foreground until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
import signal

logger = logging.getLogger(__name__)


# ServerConfig fields set by add_server_arguments (serve's --host is one more; demo's --host is the page's).
SERVER_FIELDS = ("repository", "profile", "http_port", "grpc_port", "metrics_port", "startup_timeout_s")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The embedded server's flags, shared by ``serve`` and ``demo`` (each falls back to DERMASSIST_*, then the default)."""
    from ..config import PROFILES

    parser.add_argument("--repository", help="model repository (default: the project's model_repository/)")
    parser.add_argument("--profile", choices=PROFILES, help="config profile (default: embedded)")
    parser.add_argument("--http-port", type=int, help="Triton HTTP port (default 8000)")
    parser.add_argument("--grpc-port", type=int, help="Triton gRPC port (default 8001)")
    parser.add_argument("--metrics-port", type=int, help="Triton metrics port (default 8002)")
    parser.add_argument("--startup-timeout-s", type=float, help="seconds to wait for Triton readiness (default 180)")


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``serve`` (each falls back to its DERMASSIST_* variable, then the default)."""
    add_server_arguments(parser)
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")


def run(args: argparse.Namespace) -> int:
    """Start the server, wait for readiness, forward SIGINT/SIGTERM and return its exit code."""
    from ..config import ServerConfig
    from ..repository import missing_artifacts
    from ..server import TritonServer

    config = ServerConfig.resolve(vars(args))
    missing = missing_artifacts(config.repository)
    if missing:
        logger.warning("model artifacts missing (%s); run `make models` first", ", ".join(map(str, missing)))
    server = TritonServer(config)
    server.start()
    logger.info("serving; press Ctrl-C to stop (log: %s)", server.log_path)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: server.send_signal(signum))
    code = server.wait()
    server.stop()
    logger.info("tritonserver stopped (exit code %s)", code)
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else 1
