"""The ``dermassist-client`` command line: ``analyze`` images, start the ``demo`` page, or run a DICOM node."""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys

from .config import TLS_HELP, connection_options
from .dicom.command import add_listen_arguments, listen
from .errors import DermAssistClientError
from .verdict import verdict_line, verdict_of_dict

DEFAULT_URL = "127.0.0.1:8001"
DESCRIPTION = "DermAssist client: analyze images, start the demo page against a running server, or run a DICOM node."


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server HOST:PORT (default {DEFAULT_URL})")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc",
                        help="grpc (default: what `dermassist serve` serves) or http (a bare tritonserver's HTTP API; "
                             "the HTTP port of `dermassist serve` answers health probes only)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of one call in seconds (default 30)")
    parser.add_argument("--retries", type=int, default=3, help="retries while the server is unavailable (default 3)")
    tls = parser.add_argument_group("TLS (gRPC or HTTPS)")
    tls.add_argument("--ssl", action="store_true", help=TLS_HELP["ssl"])
    tls.add_argument("--root-certificates", metavar="PEM", help=TLS_HELP["root_certificates"])
    tls.add_argument("--private-key", metavar="PEM", help=TLS_HELP["private_key"])
    tls.add_argument("--certificate-chain", metavar="PEM", help=TLS_HELP["certificate_chain"])


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dermassist-client``."""
    parser = argparse.ArgumentParser(prog="dermassist-client", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    analyze = sub.add_parser("analyze", help="analyze images; one result per image")
    analyze.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, BMP, TIFF or DICOM)")
    analyze.add_argument("--json", action="store_true", help="print one JSON object per line")
    analyze.add_argument("--dicom-out", metavar="DIR", help="write a DICOM SEG and SR per DICOM image into DIR")
    analyze.add_argument("--fhir-out", metavar="FILE", help="write one FHIR R4 transaction Bundle of all results")
    analyze.add_argument("--patient-id", metavar="ID",
                         help="the patient of the plain pictures, for the FHIR subject (a DICOM file names its own)")
    analyze.add_argument("--patient-system", metavar="URI",
                         help="the URI of the site's patient identifier system (its MRN namespace), for the FHIR subject")
    _add_connection(analyze)
    demo = sub.add_parser("demo", help="start the Gradio demo page against a running server")
    demo.add_argument("--host", default="127.0.0.1", help="address the page binds (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=7860, help="page port (default 7860)")
    _add_connection(demo)
    listen = sub.add_parser("dicom-listen", help="DICOM node: analyse received photographs, store SEG and SR in a PACS")
    add_listen_arguments(listen)
    _add_connection(listen)
    return parser


def summary_line(path: str, result: dict) -> str:
    """The plain-text line of one result: the triage verdict with its score and note first, then the details."""
    top = result["label"]
    lesion = (f"lesion {100 * result['lesion_fraction']:.1f}% of image, bbox {result['bbox']}"
              if result["lesion_found"] else "NO LESION FOUND (whole image classified)")
    return (f"{path}: {verdict_line(verdict_of_dict(result))}; {top} ({result['label_name']}) "
            f"p={result['probabilities'][top]:.3f}; {lesion}; model {result['model_name']} v{result['model_version']}")


def analyze(args: argparse.Namespace) -> int:
    """Analyze each image; print results on stdout, failures on stderr; 1 if any failed."""
    from .client import DermAssistClient
    from .interop import InteropRun

    failures = 0
    with DermAssistClient(args.url, args.protocol, **connection_options(args)) as client:
        run = InteropRun(client, dicom_out=args.dicom_out, fhir_out=args.fhir_out, patient_system=args.patient_system,
                         patient_id=args.patient_id)
        for path in args.images:
            try:
                result = run.analyze(path)
            except DermAssistClientError as e:
                failures += 1
                print(f"{path}: FAILED: {e}", file=sys.stderr)
                continue
            print(json.dumps({"image": path, **result}) if args.json else summary_line(path, result), flush=True)
        bundle = run.finish()
    if bundle:
        print(f"FHIR bundle written to {bundle}", file=sys.stderr)
    return 1 if failures else 0


def demo(args: argparse.Namespace) -> int:
    """Serve the demo page until Ctrl-C."""
    from .demo import launch_demo, wait_for_signal

    page, local_url = launch_demo(args.url, protocol=args.protocol, host=args.host, port=args.port,
                                  **connection_options(args))
    try:
        wait_for_signal(on_ready=lambda: print(
            f"DermAssist demo page: {local_url} (server {args.url} over {args.protocol}); Ctrl-C to stop", flush=True))
    finally:
        page.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dermassist-client``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"analyze": analyze, "demo": demo, "dicom-listen": listen}[args.command](args)
    except DermAssistClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (``| head``): stop quietly, as Unix tools do
        _silence_stdout()
        return 128 + 13  # SIGPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of it does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


if __name__ == "__main__":
    sys.exit(main())
