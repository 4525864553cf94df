"""``dermassist-client dicom-listen``: its arguments and its foreground loop (pydicom loads only when run)."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import DEFAULT_AE_TITLE, DEFAULT_PORT, DEFAULT_RETRY_S
from .identity import UID_ROOT_HELP
from .limits import (
    DEFAULT_ANSWER_WITHIN_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_ASSOCIATIONS,
    DEFAULT_MAX_ASSOCIATIONS_PER_SENDER,
    ENVIRONMENT,
    FLAGS,
    MAX_MAX_DATASET_MIB,
    AssociationLimits,
)
from .tls import CRL_NEEDS_CLIENT_CA, PROFILES, NodeTls, PacsTls

log = logging.getLogger(__name__)

DEFAULT_SPOOL = "dermassist-spool"


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    """The node's own flags (the connection flags to the server are added by the caller)."""
    parser.add_argument("--aet", default=DEFAULT_AE_TITLE, help=f"this node's AE title (default {DEFAULT_AE_TITLE})")
    parser.add_argument("--uid-root", metavar="ROOT", help=UID_ROOT_HELP)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"DICOM port (default {DEFAULT_PORT})")
    parser.add_argument("--pacs", metavar="HOST:PORT", help="PACS to C-STORE the SEG and SR to (omit: spool only)")
    parser.add_argument("--pacs-aet", metavar="AET", help="the PACS's AE title (required with --pacs)")
    parser.add_argument("--pacs-retry", type=float, default=DEFAULT_RETRY_S, metavar="SECONDS",
                        help=f"while the PACS is down, try the spool again every SECONDS (default {DEFAULT_RETRY_S:g})")
    parser.add_argument("--spool", default=DEFAULT_SPOOL, metavar="DIR",
                        help=f"folder holding results until the PACS has them (default ./{DEFAULT_SPOOL})")
    parser.add_argument("--no-forward-source", dest="forward_source", action="store_false",
                        help="do not send the received image to the PACS (when the PACS is the sender)")
    parser.add_argument("--allow-aet", dest="calling_aets", action="append", default=[], metavar="AET",
                        help="accept associations only from this calling AE title (repeatable; default: any)")
    parser.add_argument("--idle-timeout", dest="idle_timeout_s", type=float, default=None, metavar="SECONDS",
                        help=f"abort an association that sends nothing for SECONDS (also the ACSE and DIMSE timeouts; "
                             f"env {ENVIRONMENT['idle_timeout_s']}; default {DEFAULT_IDLE_TIMEOUT_S:g})")
    parser.add_argument("--answer-within", dest="answer_within_s", type=float, default=None, metavar="SECONDS",
                        help=f"answer each instance within SECONDS of its arrival, waiting for earlier instances and "
                             f"its analysis included: Refused, Out of Resources (0xA700: the sender retries later) "
                             f"when the ensemble has not answered by then; keep it below the senders' DIMSE timeout "
                             f"(env {ENVIRONMENT['answer_within_s']}; default {DEFAULT_ANSWER_WITHIN_S:g})")
    parser.add_argument("--max-associations", type=int, default=None, metavar="N",
                        help=f"associations open at once, all senders together (env "
                             f"{ENVIRONMENT['max_associations']}; default {DEFAULT_MAX_ASSOCIATIONS})")
    parser.add_argument("--max-associations-per-sender", dest="max_associations_per_sender", type=int, default=None,
                        metavar="N", help=f"associations open at once from one sender (peer IP address); one more from "
                                         f"it is rejected (env {ENVIRONMENT['max_associations_per_sender']}; default "
                                         f"{DEFAULT_MAX_ASSOCIATIONS_PER_SENDER}, or --max-associations if lower)")
    parser.add_argument("--max-dataset-mib", dest="max_dataset_mib", type=int, default=None, metavar="MIB",
                        help=f"abort an association whose instance brings more than MIB mebibytes, while it arrives "
                             f"(1..{MAX_MAX_DATASET_MIB}; env {ENVIRONMENT['max_dataset_mib']}; default: the largest "
                             "data set the node accepts at all, which its start-up line shows)")
    tls = parser.add_argument_group("DICOM TLS (PS3.15 Annex B; TLS 1.2 or later)")
    tls.add_argument("--tls-cert", metavar="PEM", help="listen with DICOM TLS: this node's certificate (then its "
                                                       "intermediates; with --tls-key)")
    tls.add_argument("--tls-key", metavar="PEM", help="the unencrypted private key of --tls-cert")
    tls.add_argument("--tls-client-ca", metavar="PEM",
                     help="accept only senders presenting a certificate this CA signed (mutual TLS; with --tls-cert)")
    tls.add_argument("--tls-crl", metavar="PEM",
                     help="refuse senders whose certificate these revocation lists revoke (the current CRL of each CA "
                          "of --tls-client-ca; a list written over the file is taken up without a restart)")
    tls.add_argument("--pacs-tls", action="store_true", help="send to the PACS with DICOM TLS")
    tls.add_argument("--pacs-ca", metavar="PEM", help="CA that signed the PACS's certificate (default: this system's "
                                                      "trusted CAs; with --pacs-tls)")
    tls.add_argument("--pacs-cert", metavar="PEM", help="this node's client certificate, for a PACS that asks for one "
                                                        "(with --pacs-key and --pacs-tls)")
    tls.add_argument("--pacs-key", metavar="PEM", help="the unencrypted private key of --pacs-cert")
    tls.add_argument("--pacs-server-name", metavar="NAME",
                     help="the name the PACS's certificate holds, where --pacs gives another (an address; with --pacs-tls)")
    tls.add_argument("--tls-profile", choices=PROFILES, default=None,
                     help="DICOM's TLS profile on both legs: bcp195 (default: TLS 1.2 or later, forward-secret ciphers) "
                          "or aes (also TLS_RSA_WITH_AES_128_CBC_SHA, for modalities and PACS of the older AES "
                          "profile that offer nothing else; that cipher needs an RSA certificate)")
    parser.add_argument("--any-called-aet", action="store_const", const=True, default=None,
                        help="accept associations whatever called AE title they name (default: only --aet; env "
                             f"{ENVIRONMENT['any_called_aet']}=1)")


def association_limits(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> AssociationLimits:
    """The node's association settings: each flag given in ``args``, else its environment variable (``environ``;
    this process's by default), else its default."""
    return AssociationLimits.resolve({name: getattr(args, name, None) for name in FLAGS}, environ)


def client_options(args: argparse.Namespace, limits: AssociationLimits) -> dict[str, Any]:
    """The node's client's connection options: the command line's, its timeout at most ``answer_within_s`` over HTTP,
    where tritonclient bounds each socket wait by the client's timeout and never by a call's (the node's answer had
    come at the client's 30 s, not within --answer-within)."""
    from ..config import config_default, connection_options

    options = connection_options(args)
    if args.protocol == "http":
        options["timeout"] = min(options["timeout"] or config_default("timeout_s"), limits.answer_within_s)
    return options


def tls_settings(args: argparse.Namespace) -> tuple[NodeTls | None, PacsTls | None]:
    """The node's DICOM TLS on each leg from the command line (None: plain DICOM on that leg); a flag given without
    the one it needs is refused, naming both."""
    from ..errors import ClientConfigError

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ClientConfigError("--tls-cert and --tls-key go together (the node's certificate and its key); got "
                                f"--tls-cert {args.tls_cert}, --tls-key {args.tls_key}")
    if args.tls_client_ca and not args.tls_cert:
        raise ClientConfigError("--tls-client-ca needs --tls-cert and --tls-key: a node asks senders for certificates "
                                "only over TLS")
    if args.tls_crl and not args.tls_client_ca:
        raise ClientConfigError(CRL_NEEDS_CLIENT_CA)
    pacs_flags = [f"--{name.replace('_', '-')}" for name in ("pacs_ca", "pacs_cert", "pacs_key", "pacs_server_name")
                  if getattr(args, name) is not None]
    if pacs_flags and not args.pacs_tls:
        raise ClientConfigError(f"{', '.join(pacs_flags)} given without --pacs-tls: add --pacs-tls to send to the PACS "
                                "with DICOM TLS")
    if args.pacs_tls and not args.pacs:
        raise ClientConfigError("--pacs-tls needs --pacs and --pacs-aet: the PACS to send to with DICOM TLS")
    if args.tls_profile is not None and not (args.tls_cert or args.pacs_tls):
        raise ClientConfigError("--tls-profile given without a leg that speaks TLS: add --tls-cert and --tls-key, or "
                                "--pacs-tls")
    profile = {} if args.tls_profile is None else {"profile": args.tls_profile}
    node_tls = (NodeTls(args.tls_cert, args.tls_key, args.tls_client_ca, crl=args.tls_crl, **profile) if args.tls_cert
                else None)
    pacs_tls = (PacsTls(args.pacs_ca, args.pacs_cert, args.pacs_key, args.pacs_server_name, **profile)
                if args.pacs_tls else None)
    return node_tls, pacs_tls


def log_each_instance() -> None:
    """Let the node log at INFO (each instance analysed, each item forwarded) when the command's level is quieter:
    a service's log must show what it did, not only what it refused; ``--verbose`` (DEBUG) is left as it is."""
    node_log = logging.getLogger(__package__)
    if node_log.getEffectiveLevel() > logging.INFO:
        node_log.setLevel(logging.INFO)


def listen(args: argparse.Namespace) -> int:
    """Run the DICOM node until SIGINT or SIGTERM."""
    from ..client import DermAssistClient
    from ..errors import ClientConfigError
    from ..interop import require_extra
    from ..signals import wait_for_signal

    require_extra("dicom", "dicom-listen")
    from .config import NodeConfig, PacsConfig, parse_host_port
    from .errors import DicomError
    from .identity import OutputIdentity
    from .node import DicomNode

    if bool(args.pacs) != bool(args.pacs_aet):
        raise ClientConfigError("--pacs and --pacs-aet go together: give the PACS's HOST:PORT and its AE title")
    node_tls, pacs_tls = tls_settings(args)
    pacs = PacsConfig(*parse_host_port(args.pacs, "--pacs"), ae_title=args.pacs_aet, tls=pacs_tls) if args.pacs else None
    try:
        identity = OutputIdentity(uid_root=args.uid_root) if args.uid_root else OutputIdentity()
    except DicomError as e:
        raise ClientConfigError(f"--uid-root: {e}") from e
    config = NodeConfig(spool=Path(args.spool), ae_title=args.aet, host=args.host, port=args.port, pacs=pacs,
                        forward_source=args.forward_source, retry_s=args.pacs_retry,
                        calling_aets=tuple(args.calling_aets), identity=identity, tls=node_tls)
    limits = association_limits(args)
    log_each_instance()
    if pacs is None:
        log.warning("no --pacs given: results stay in %s", config.spool / "pending")
    with DermAssistClient(args.url, args.protocol, **client_options(args, limits)) as client:
        with DicomNode(client, config, limits) as node:
            host, port = node.address
            wait_for_signal(on_ready=lambda: print(
                f"DermAssist DICOM node {config.ae_title} on {host}:{port} (server {args.url}, "
                f"PACS {pacs or 'none: spool only'}); Ctrl-C to stop", flush=True))
    return 0
