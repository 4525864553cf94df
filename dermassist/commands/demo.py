"""``dermassist demo``: start the embedded Triton behind the guard (as ``serve``), then the Gradio demo page."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from .serve import SERVER_FIELDS, add_server_arguments

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``demo``: the page's address, then the server's (each falls back to DERMASSIST_*)."""
    from dermassist_client.config import DEMO_HOST, DEMO_PORT

    parser.add_argument("--host", default=DEMO_HOST, help="address the demo page binds (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEMO_PORT, help="demo page port (default %(default)s)")
    add_server_arguments(parser)


def server_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The ServerConfig fields the flags set (``--host`` is the page's, not the server's)."""
    return {name: getattr(args, name, None) for name in SERVER_FIELDS}


def page_address_problem(host: str, port: int) -> str | None:
    """Why the demo page cannot be served on host:port (a port outside 1-65535, a host that does not resolve, a port
    taken); None when it can."""
    from ..base.server_config import TCP_PORTS
    from ..guard.config import host_problem, port_problem

    if isinstance(port, bool) or not isinstance(port, int) or port not in TCP_PORTS:
        return f"demo --port must be a TCP port from 1 to {TCP_PORTS[-1]}, got {port!r}; pass another --port"
    problem = host_problem(host)
    if problem is not None:
        return f"demo --host {host} {problem}; expected a name or address of this machine: pass another --host"
    problem = port_problem(host, port)
    if problem is not None:
        return (f"cannot serve the demo page on {host}:{port}: {problem}; expected a free port on an address of this "
                f"machine: stop what holds port {port} or pass another --port (or fix --host)")
    return None


def check_page_address(host: str, port: int) -> None:
    """A ConfigError (exit 2) when the page's address is unusable: told before tritonserver loads the models."""
    from ..base.errors import ConfigError

    problem = page_address_problem(host, port)
    if problem is not None:
        raise ConfigError(problem)


def served_not_learnt(repository: Path) -> tuple[str, ...]:
    """The classes the served classifier has no training images of, as its export recorded them beside it (the page
    shows no percentage for them); none, said in a warning, where it recorded none (a classifier imported or trained
    outside a release, or a repository exported before they were recorded)."""
    from training.export.steps import UNTRAINED_KEY, calibration_file, served_untrained_classes

    from ..base.repository import serves_imported

    untrained = served_untrained_classes(repository)
    if untrained is None:
        if serves_imported(repository):  # --force would replace the imported models
            logger.warning("%s records no %s (an imported classifier): the demo page marks no class as not learnt",
                           calibration_file(repository), UNTRAINED_KEY)
        else:
            logger.warning("%s records no %s (exported before they were recorded): the demo page marks no class as not "
                           "learnt; to have them, export the release again (`dermassist models --force`)",
                           calibration_file(repository), UNTRAINED_KEY)
        return ()
    return untrained


def run(args: argparse.Namespace) -> int:
    """Start Triton behind the guard, wait until ready, serve the page against the guard's front, print its URL; stop
    both on SIGINT/SIGTERM. Behind the guard, as ``dermassist serve``, a crashed or hung step heals itself while the
    page stays up (the page says the service cannot be reached meanwhile), and every analysis is audited. The page is
    told what the served model version records: its REFER threshold and the classes its classifier never learnt."""
    check_page_address(args.host, args.port)  # Gradio would say "Cannot find empty port" once Triton is up
    from dermassist_client.demo import launch_demo, wait_for_signal
    from preprocess.contract import TRIAGE_MODEL
    from preprocess.triage import TriageParams

    from ..base.errors import ServerError
    from ..base.repository import require_artifacts, step_settings
    from ..base.server_config import ServerConfig
    from ..guard.config import GuardConfig
    from ..guard.guard import BackgroundGuard

    config = ServerConfig.resolve(server_overrides(args))
    require_artifacts(config.repository, ServerError)
    # the served REFER threshold, for the banner to compare the score with (the gpu profile has no configs/gpu.pbtxt:
    # step_settings then reads each model's config.pbtxt, the one that profile serves)
    threshold = step_settings(config.repository, TRIAGE_MODEL, TriageParams, config.profile)
    not_learnt = served_not_learnt(config.repository)  # a fact of the served classifier, recorded by its export
    with BackgroundGuard(config, GuardConfig.resolve({})) as guard:
        page, url = launch_demo(guard.grpc_address, protocol="grpc", host=args.host, port=args.port,
                                refer_threshold=threshold.refer_threshold, not_learnt=not_learnt)
        try:
            signum = wait_for_signal(alive=lambda: guard.running, on_ready=lambda: print(
                f"DermAssist demo page: {url} (DermAssist gRPC {guard.grpc_address}); Ctrl-C to stop", flush=True))
            if signum:
                logger.info("signal %d received; stopping the demo page and the server", signum)
        finally:
            page.close()
        if not guard.running:
            logger.error("the server stopped while the demo was up (see the log above)")
            return 1
    logger.info("the demo page and the server stopped")
    return 0
