"""``dermassist demo``: start the embedded Triton server, then the Gradio demo page against it."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from .serve import SERVER_FIELDS, add_server_arguments

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``demo``: the page's address, then the server's (each falls back to DERMASSIST_*)."""
    parser.add_argument("--host", default="127.0.0.1", help="address the demo page binds (default %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="demo page port (default %(default)s)")
    add_server_arguments(parser)


def server_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The ServerConfig fields the flags set (``--host`` is the page's, not the server's)."""
    return {name: getattr(args, name, None) for name in SERVER_FIELDS}


def run(args: argparse.Namespace) -> int:
    """Start Triton, wait until ready, serve the page, print its URL; stop both on SIGINT/SIGTERM."""
    from dermassist_client.demo import launch_demo, wait_for_signal

    from ..base.errors import ServerError
    from ..base.repository import require_artifacts
    from ..base.server import TritonServer
    from ..base.server_config import ServerConfig

    config = ServerConfig.resolve(server_overrides(args))
    require_artifacts(config.repository, ServerError)
    with TritonServer(config) as server:
        page, url = launch_demo(config.grpc_address, protocol="grpc", host=args.host, port=args.port)
        try:
            signum = wait_for_signal(alive=lambda: server.running, on_ready=lambda: print(
                f"DermAssist demo page: {url} (Triton gRPC {config.grpc_address}); Ctrl-C to stop", flush=True))
            if signum:
                logger.info("signal %d received; stopping the demo page and tritonserver", signum)
        finally:
            page.close()
        if not server.running:
            logger.error("tritonserver exited while the demo was up; log tail:\n%s", server.log_tail())
            return 1
    return 0
