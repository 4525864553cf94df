"""``dermassist demo``: start the embedded Triton behind the guard (as ``serve``), then the Gradio demo page."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..base.server_config import DemoPageSettings, ServerConfig
from ..base.settings import setting_names
from .serve import SERVER_FIELDS, add_server_arguments

logger = logging.getLogger(__name__)


PAGE_PORT_SETTING = f"{setting_names(DemoPageSettings, 'demo_port')} (with make demo: DERMASSIST_DEMO_PORT=7861 make demo)"
PAGE_HOST_SETTING = setting_names(DemoPageSettings, "demo_host")


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``demo``: the page's address, then the server's (each falls back to DERMASSIST_*)."""
    from dermassist_client.config import DEMO_HOST, DEMO_PORT

    parser.add_argument("--host", dest="demo_host",
                        help=f"address the demo page binds (or DERMASSIST_DEMO_HOST; default {DEMO_HOST})")
    parser.add_argument("--port", dest="demo_port", type=int,
                        help=f"demo page port (or DERMASSIST_DEMO_PORT; default {DEMO_PORT})")
    add_server_arguments(parser)


def page_address(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """The page's host and port: the flags, else DERMASSIST_DEMO_HOST / _PORT (of ``environ``, the process's by
    default), else the client's defaults."""
    from dermassist_client.config import DEMO_HOST, DEMO_PORT

    page = DemoPageSettings.resolve({"demo_host": args.demo_host, "demo_port": args.demo_port}, environ)
    return (DEMO_HOST if page.demo_host is None else page.demo_host,
            DEMO_PORT if page.demo_port is None else page.demo_port)


def server_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The ServerConfig fields the flags set (``--host`` is the page's, not the server's)."""
    return {name: getattr(args, name, None) for name in SERVER_FIELDS}


def page_address_problem(host: str, port: int) -> str | None:
    """Why the demo page cannot be served on host:port (a port outside 1-65535, a host that does not resolve, a port
    taken), in the words of ``dermassist demo``'s settings (the page's own check, the client's); None when it can."""
    from dermassist_client.page_address import page_address_problem as client_problem

    return client_problem(host, port, PAGE_PORT_SETTING, PAGE_HOST_SETTING)


def shared_port_problem(port: int, config: ServerConfig) -> str | None:
    """Why the page cannot have ``port``: it is one of the server's own (free now, taken by the server once it starts,
    after the models loaded); None otherwise."""
    from ..base.settings import setting_names

    for field in ("http_port", "grpc_port", "metrics_port"):
        if getattr(config, field) == port:
            return (f"the demo page's port {port} is also the server's {field.replace('_', ' ')} "
                    f"({setting_names(ServerConfig, field)}): pass another {PAGE_PORT_SETTING}")
    return None


def server_port_problems(config: ServerConfig) -> list[str]:
    """Why each public port of the demo's server cannot be listened on now, in the words of ``demo``'s own settings
    (its --host is the page's: the server's addresses are DERMASSIST_HOST and DERMASSIST_METRICS_HOST); an address
    that does not resolve is told as such, not as a port to change. The fixes are ``bind_fixes``'."""
    from ..base.server import bind_fixes
    from ..base.settings import setting_names, variable_name
    from ..guard.config import host_problem
    from ..guard.ports import busy_public_ports

    addresses = {"host": config.host, "metrics_host": config.metrics_host}
    unresolved = [f"the server's address {variable_name(ServerConfig, field)}={host} {problem}; expected a name or "
                  "address of this machine: set another" for field, host in addresses.items()
                  if host and (problem := host_problem(host)) is not None]
    if unresolved:
        return unresolved
    problems = [f"{b.what} on {b.host}:{b.port} ({b.reason}): {bind_fixes([(b.port, b.code)])[0]}, or pass another "
                f"{setting_names(ServerConfig, b.setting)}" for b in busy_public_ports(config, config)]
    if problems:
        problems.append(f"(the server's address is {variable_name(ServerConfig, 'host')})")
    return problems


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
    page stays up (the page says the service cannot be reached meanwhile), and every analysis is audited: with the
    audit trail on stdout (the default), stdout holds it alone (the address, and all else printed, go to stderr). The
    page is told what the served model version records: its REFER threshold and the classes its classifier never
    learnt."""
    from dermassist_client.demo import Analyses, launch_demo, wait_for_signal
    from preprocess.contract import TRIAGE_MODEL
    from preprocess.triage import TriageParams

    from ..base.errors import ConfigError, ServerError
    from ..base.repository import require_artifacts, step_settings
    from ..guard.audit import stdout_kept_for_the_trail
    from ..guard.background import BackgroundGuard
    from ..guard.config import GuardConfig

    config = ServerConfig.resolve(server_overrides(args))
    host, port = page_address(args)
    # every taken port in one message, before tritonserver loads the models (Gradio would say "Cannot find empty
    # port" once Triton is up; the server's own check names flags of `serve`)
    problems = [p for p in (page_address_problem(host, port), shared_port_problem(port, config)) if p]
    problems += server_port_problems(config)
    if problems:
        raise ConfigError("; ".join(problems))
    require_artifacts(config.repository, ServerError)
    # the served REFER threshold, for the banner to compare the score with (the gpu profile has no configs/gpu.pbtxt:
    # step_settings then reads each model's config.pbtxt, the one that profile serves)
    threshold = step_settings(config.repository, TRIAGE_MODEL, TriageParams, config.profile)
    not_learnt = served_not_learnt(config.repository)  # a fact of the served classifier, recorded by its export
    guard_config = GuardConfig.resolve({})
    analyses = Analyses()
    with BackgroundGuard(config, guard_config) as guard, stdout_kept_for_the_trail(guard_config.audit_log):
        page, url = launch_demo(guard.grpc_address, protocol="grpc", host=host, port=port,
                                refer_threshold=threshold.refer_threshold, not_learnt=not_learnt, analyses=analyses)
        try:
            signum = wait_for_signal(alive=lambda: guard.running, on_ready=lambda: print(
                f"DermAssist demo page: {url} (DermAssist gRPC {guard.grpc_address}); Ctrl-C to stop", flush=True))
            if signum:
                logger.info("signal %d received; stopping the demo page and the server", signum)
                analyses.drain(guard_config.drain_s)  # the analyses running end, and are shown, before the page
        finally:
            page.close()
        if not guard.running:
            logger.error("the server stopped while the demo was up (see the log above)")
            return 1
    logger.info("the demo page and the server stopped")
    return 0
