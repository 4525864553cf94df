"""The ``dermassist-client`` command line: ``analyze`` images, start the ``demo`` page, or run a DICOM node."""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

from .classes import CLASS_CODES
from .config import (
    DEMO_HOST,
    DEMO_PORT,
    DEMO_RETRIES,
    PROTOCOLS,
    TLS_HELP,
    class_codes,
    config_default,
    connection_options,
)
from .dicom.command import add_listen_arguments, listen
from .dicom.identity import UID_ROOT_HELP
from .errors import ClientConfigError, DeadlineExceededError, DermAssistClientError, ServerUnavailableError
from .verdict import scores_withheld, verdict_line, verdict_of_dict

if TYPE_CHECKING:
    from .client import DermAssistClient

DEFAULT_URL = "127.0.0.1:8001"
DESCRIPTION = "DermAssist client: analyze images, start the demo page against a running server, or run a DICOM node."
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_CODES = f"""exit codes of analyze:
  {EXIT_OK}    every image was answered
  {EXIT_FAILED}    some images were refused or failed, each on its own (named on stderr; with --json each also
       gets an error record on stdout); the others were answered
  {EXIT_USAGE}    usage error (flags, settings, TLS files, output paths): nothing was analysed
  {EXIT_UNREACHABLE}    the server could not be reached (down, wrong port, TLS mismatch), was not serving (not ready,
       recovering), or answered its first picture with nothing within the deadline and did not say it was ready:
       the run stopped at the first such failure and the files not tried are counted on stderr (with --json each
       gets an error record)
  130  interrupted (Ctrl-C)"""
NOT_TRIED = "NotTried"
NOT_LEARNT_HELP = (
    "class code(s) the served classifier has no training images of ({codes}): the page shows no percentage for them "
    "and says they were never learnt (default: none, nothing is claimed). This client cannot read the served model "
    "version; `dermassist demo` fills it from the served model (its lesion_classifier calibration.json), e.g. SCC "
    "for the shipped release"
)


def _add_connection(parser: argparse.ArgumentParser, retries: int | None = None, retries_why: str = "") -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server HOST:PORT (default {DEFAULT_URL})")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=config_default("protocol"),
                        help="grpc (default: what `dermassist serve` serves) or http (a bare tritonserver's HTTP API; "
                             "the HTTP port of `dermassist serve` answers health probes only)")
    parser.add_argument("--timeout", type=float, default=config_default("timeout_s"),
                        help="deadline of one call in seconds (default %(default)g)")
    parser.add_argument("--retries", type=int, default=config_default("retries") if retries is None else retries,
                        help=f"retries while the server is unavailable (default %(default)s{retries_why})")
    parser.add_argument("--model-version", default=config_default("model_version"), metavar="N",
                        help="pin the served model's version (default: the server's latest); every answer names its "
                             "release and build, which identify the models better (docs/sdk.md)")
    tls = parser.add_argument_group("TLS (gRPC or HTTPS)")
    tls.add_argument("--ssl", action="store_true", help=TLS_HELP["ssl"])
    tls.add_argument("--root-certificates", metavar="PEM", help=TLS_HELP["root_certificates"])
    tls.add_argument("--private-key", metavar="PEM", help=TLS_HELP["private_key"])
    tls.add_argument("--certificate-chain", metavar="PEM", help=TLS_HELP["certificate_chain"])


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dermassist-client``."""
    parser = argparse.ArgumentParser(prog="dermassist-client", description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    analyze = sub.add_parser("analyze", help="analyze images; one result per image", epilog=EXIT_CODES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    analyze.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, BMP, TIFF or DICOM)")
    analyze.add_argument("--json", action="store_true",
                         help="print one JSON object per line, one per IMAGE: its result, or {image, error: {kind, "
                              "message}} when it failed or was not tried")
    analyze.add_argument("--dicom-out", metavar="DIR",
                         help="write a DICOM SEG and SR per DICOM image into DIR (created when missing)")
    analyze.add_argument("--fhir-out", metavar="FILE",
                         help="write one FHIR R4 transaction Bundle of all results to FILE (its folder is created when "
                              "missing)")
    analyze.add_argument("--patient-id", metavar="ID",
                         help="the patient of the plain pictures, for the FHIR subject (a DICOM file names its own)")
    analyze.add_argument("--patient-system", metavar="URI",
                         help="the URI of the site's patient identifier system (its MRN namespace), for the FHIR subject; "
                              "given to a DICOM Patient ID only when its Issuer of Patient ID is absent or --local-issuer")
    analyze.add_argument("--uid-root", metavar="ROOT", help=UID_ROOT_HELP)
    analyze.add_argument("--local-issuer", metavar="ISSUER",
                         help="the Issuer of Patient ID (0010,0021) of the site's own patient IDs, the ones "
                              "--patient-system names (another issuer's IDs go without it)")
    _add_connection(analyze)
    demo = sub.add_parser("demo", help="start the Gradio demo page against a running server")
    demo.add_argument("--host", default=DEMO_HOST, help="address the page binds (default %(default)s)")
    demo.add_argument("--port", type=int, default=DEMO_PORT, help="page port (default %(default)s)")
    demo.add_argument("--not-learnt", type=_class_code, nargs="+", action="extend", default=None, metavar="CODE",
                      help=NOT_LEARNT_HELP.format(codes=", ".join(CLASS_CODES)))
    _add_connection(demo, DEMO_RETRIES, ": the page says soon that its server is down")
    listen = sub.add_parser("dicom-listen", help="DICOM node: analyse received photographs, store SEG and SR in a PACS")
    add_listen_arguments(listen)
    _add_connection(listen)
    return parser


def _class_code(text: str) -> str:
    """One ``--not-learnt`` value as its class code; argparse's usage error (exit 2) for an unknown one."""
    try:
        return class_codes([text], None)[0]
    except DermAssistClientError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def summary_line(path: str, result: dict) -> str:
    """The plain-text line of one result: the triage verdict with its score and note first, then the details; the
    most probable class is named as the diagnosis only when one is given (``diagnosis_given``). A picture that is
    not assessable gets neither the refer score nor a class probability (``scores_withheld``), as on the demo
    page's banner; ``--json`` keeps every field."""
    top = result["top_class"]
    p = result["probabilities"][top]
    answer = (f"{top} ({result['top_class_name']}) p={p:.3f}" if result["diagnosis_given"]
              else "no diagnosis given" if scores_withheld(result.get("assessable"))
              else f"no diagnosis given; highest class {top} p={p:.3f} (not a diagnosis)")
    lesion = (f"lesion {100 * result['lesion_fraction']:.1f}% of image, bbox {result['bbox']}"
              if result["lesion_found"] else "NO LESION FOUND (whole image classified)")
    verdict = verdict_line(verdict_of_dict(result)).rstrip(".")  # the note's full stop: "; " ends the part
    return (f"{path}: {verdict}; {answer}; {lesion}; "
            f"model {result['model_name']} v{result['model_version']}"
            + (f" ({result['model_release']}, build {result['model_build']})" if result.get("model_build") else ""))


def error_record(path: str, kind: str, message: str) -> str:
    """The --json line of an image that got no result: its path, the error's kind and message."""
    return json.dumps({"image": path, "error": {"kind": kind, "message": message}})


def analyze(args: argparse.Namespace) -> int:
    """Analyze each image; results on stdout, failures on stderr (and as error records under --json). Stops at the
    first failure to reach the server (EXIT_UNREACHABLE); EXIT_FAILED when some images failed on their own."""
    from .client import DermAssistClient
    from .interop import InteropRun

    failures, answered, unreachable = 0, 0, False
    with DermAssistClient(args.url, args.protocol, **connection_options(args)) as client:
        run = InteropRun(client, dicom_out=args.dicom_out, fhir_out=args.fhir_out, patient_system=args.patient_system,
                         patient_id=args.patient_id, local_issuer=args.local_issuer,
                         uid_root=args.uid_root, inputs=args.images)
        for index, path in enumerate(args.images):
            try:
                result = run.analyze(path)
            except ServerUnavailableError as e:
                unreachable = True
                _report_failure(args, path, type(e).__name__, str(e))
                _report_not_tried(args, args.images[index + 1:], "the server could not be reached or was not serving")
                break
            except DeadlineExceededError as e:
                failures += 1
                _report_failure(args, path, type(e).__name__, str(e))
                if answered == 0 and not _says_ready(client):  # hung: N pictures would wait N deadlines
                    unreachable = True
                    _report_not_tried(args, args.images[index + 1:], "the server answered nothing within the "
                                      "deadline and did not say it was ready")
                    break
                continue
            except DermAssistClientError as e:
                failures += 1
                _report_failure(args, path, type(e).__name__, str(e))
                continue
            except Exception as e:  # an unforeseen fault costs this file, not the batch or its Bundle
                failures += 1
                logging.getLogger(__name__).debug("analysing %s failed unexpectedly", path, exc_info=True)
                _report_failure(args, path, type(e).__name__, f"unexpected {type(e).__name__}: {e}; a DermAssist "
                                "fault: report it with this file (--verbose shows the traceback)")
                continue
            answered += 1
            print(json.dumps({"image": path, **result}) if args.json else summary_line(path, result), flush=True)
        bundle = run.finish()
    if bundle:
        missing = len(args.images) - run.reported
        print(f"FHIR bundle written to {bundle}: {run.reported} of {len(args.images)} image(s)"
              + (f"; the {missing} other(s) got no result (above) and are not in it: analyse them again into another "
                 "file" if missing else ""), file=sys.stderr)
    elif run.removed_stale:
        print(f"no FHIR bundle was written (no image was answered); the earlier file {run.removed_stale} was removed "
              "so it cannot pass for this run's", file=sys.stderr)
    elif args.fhir_out:
        print("no FHIR bundle was written (no image was answered)", file=sys.stderr)
    return EXIT_UNREACHABLE if unreachable else EXIT_FAILED if failures else EXIT_OK


def _report_failure(args: argparse.Namespace, path: str, kind: str, message: str) -> None:
    print(f"{path}: FAILED: {message}", file=sys.stderr)
    if args.json:
        print(error_record(path, kind, message), flush=True)


def _says_ready(client: DermAssistClient) -> bool:
    """Whether the server says it is ready (False where it cannot be asked, or does not answer in time)."""
    try:
        return bool(client.ready())
    except DermAssistClientError:
        return False


def _report_not_tried(args: argparse.Namespace, paths: list[str], why: str) -> None:
    if not paths:
        return
    print(f"stopped: {why}, so {len(paths)} more file(s) were not tried", file=sys.stderr)
    if args.json:
        for path in paths:
            print(error_record(path, NOT_TRIED, f"not tried: {why} (see the error before)"), flush=True)


def demo(args: argparse.Namespace) -> int:
    """Serve the demo page until Ctrl-C."""
    from .interop import require_extra

    require_extra("demo", "the demo page")
    from .demo import Analyses, launch_demo, wait_for_signal

    analyses = Analyses()
    page, local_url = launch_demo(args.url, protocol=args.protocol, host=args.host, port=args.port,
                                  not_learnt=args.not_learnt or (), analyses=analyses, **connection_options(args))
    try:
        wait_for_signal(on_ready=lambda: print(
            f"DermAssist demo page: {local_url} (server {args.url} over {args.protocol}); Ctrl-C to stop", flush=True))
        analyses.drain(args.timeout)  # each analysis ends within its timeout (--timeout)
    finally:
        page.close()
    return 0


#: The flag of each ClientConfig field the commands set, so a refused setting names what the user typed.
SETTING_FLAGS = {"url": "--url", "protocol": "--protocol", "timeout_s": "--timeout", "retries": "--retries",
                 "model_version": "--model-version", "root_certificates": "--root-certificates",
                 "private_key": "--private-key", "certificate_chain": "--certificate-chain"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dermassist-client``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"analyze": analyze, "demo": demo, "dicom-listen": listen}[args.command](args)
    except ClientConfigError as e:
        flag = SETTING_FLAGS.get(e.setting or "")
        print(f"error: {e}" + (f" (the command line's {flag})" if flag else ""), file=sys.stderr)
        return EXIT_USAGE
    except DermAssistClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
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
