"""``dermassist gpu-check``: the GPU profile's classifier against the CPU, in this process (TorchScript on the
accelerator) or through a running DermAssist (its answers and crops). With ``--url`` it tells whether the served
answers are this CPU's classifier's, not which device served them; the report names the served classifier's platform
(``pytorch_libtorch``: the GPU profile; ``python``: the embedded CPU profile)."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Flags of ``dermassist gpu-check`` (each overrides its DERMASSIST_GPU_CHECK_* variable)."""
    from ..base.settings import setting_help
    from ..gpu_parity import GpuCheckConfig as G
    from ..remote import add_tls_flags

    parser.description = (f"{parser.description or 'check the GPU profile classifier'}. With --url: whether a running "
                          "DermAssist's answers agree with this machine's CPU run of the classifier; that does not tell "
                          "which device served them (with --admin-key-file the report names the served classifier's "
                          "platform: pytorch_libtorch in the GPU profile, python in the embedded CPU profile).")
    parser.add_argument("--crops", type=Path, help=setting_help(G, "crops", ".npz of served crops (and answers)"))
    parser.add_argument("--url", help=setting_help(G, "url", "gRPC HOST:PORT of a running DermAssist to check instead"))
    parser.add_argument("--images", type=Path, help=setting_help(G, "images", "with --url: a folder of images to send"))
    parser.add_argument("--repository", type=Path, help=setting_help(G, "repository", "repository with the exported classifier"))
    parser.add_argument("--device", help=setting_help(G, "device", "with --crops: torch device to check against the CPU"))
    parser.add_argument("--repeats", type=int, help=setting_help(G, "repeats", "with --crops: timed calls per batch size"))
    parser.add_argument("--refer-threshold", type=float,
                        help=setting_help(G, "refer_threshold", "REFER threshold (none: the GPU profile's triage step)"))
    parser.add_argument("--timeout", dest="timeout_s", type=float,
                        help=setting_help(G, "timeout_s", "with --url: seconds per call"))
    parser.add_argument("--out", type=Path, help=setting_help(G, "out", "where gpu_check.md / .json go"))
    parser.add_argument("--admin-key-file", type=Path, help=setting_help(
        G, "admin_key_file", "with --url: file holding the server's admin key, which its classifier's platform needs"))
    add_tls_flags(parser, G, "TLS (with --url, a DermAssist served over TLS)")


def run(args: argparse.Namespace) -> int:
    """Run the check, print the table, write the report; 1 when the answers differ."""
    from ..gpu_parity import GpuCheckConfig, gpu_check, markdown, write_report

    config = GpuCheckConfig.resolve(vars(args))
    result = gpu_check(config)
    js, md = write_report(result, Path(config.out))
    print(markdown(result))
    print(f"written: {md} and {js}")
    served = result.get("served_classifier")
    if served is not None and served.get("platform") == "python":
        logger.warning("the DermAssist at %s serves the embedded CPU profile's classifier (platform python): this "
                       "check says nothing about a GPU", result["device"])
    if not result["agrees"]:
        if served is not None:
            logger.error("the answers of the DermAssist at %s are not this CPU classifier's (table above)", result["device"])
        else:
            logger.error("the classifier on %s does not answer as on the CPU (table above)", result["device"])
        return 1
    return 0
