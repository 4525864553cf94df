"""Before a run: can the target be reached, and is it ready? (``python -m loadtest.run``)

Without this check an unreachable target (a wrong port, a host name that does not resolve, plain gRPC against a
TLS server or the reverse) made a run of failed calls: exit 1, "requests failed", the reason only in report.html.
Now the run is not made: exit 2 with the reason. ``ServerReady`` and ``ModelReady`` of the ensemble answer with
the guard's truth (ready only after a canary inference succeeded); a server that answers but is not ready yet
(starting, healing a step) is asked again until the deadline.
"""
from __future__ import annotations

import logging
import time

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist_client.classes import MODEL_NAME

from .errors import TargetUnreachable
from .protocol import open_channel

logger = logging.getLogger(__name__)

PREFLIGHT_TIMEOUT_S = 10.0
POLL_S = 0.5
# Words of gRPC's C core when TLS is on at one end only (the client's or the server's).
TLS_WORDS = ("handshake", "ssl", "socket closed", "wrong_version_number", "certificate")
# What a TLS client sees (gRPC 1.7x-1.8x, TLS 1.3) when the server closes the connection after the handshake: it
# asked for a client certificate and got none, or one its client CA did not sign. A plain server answers TLS with
# WRONG_VERSION_NUMBER, a server certificate the client's CA did not sign fails the handshake itself.
CLOSED_AFTER_HANDSHAKE = "socket closed"
CLIENT_CERTIFICATE = "LOADTEST_PRIVATE_KEY and LOADTEST_CERTIFICATE_CHAIN"


def unreachable_hint(details: str, tls: bool, client_certificate: bool = False) -> str:
    """What to check, given gRPC's words for a failed connection, whether the client used TLS and whether it
    presented a client certificate."""
    words = details.lower()
    if not any(word in words for word in TLS_WORDS):
        return "check --host / LOADTEST_HOST (HOST:PORT of the gRPC endpoint, 8001 by default) and that the server is up"
    if not tls:
        return "TLS at one end only? A deployed DermAssist serves TLS only: set LOADTEST_ROOT_CERTIFICATES to its ca.crt"
    if CLOSED_AFTER_HANDSHAKE in words:
        mutual = (f"a client certificate its client CA (--tls-client-ca) did not sign? Check {CLIENT_CERTIFICATE}"
                  if client_certificate else
                  f"the server requires a client certificate (mutual TLS, --tls-client-ca)? Set {CLIENT_CERTIFICATE} "
                  "to a client key and certificate its client CA signed")
        return (f"the server closed the connection after the TLS handshake: {mutual}. Else TLS at one end only, or a "
                "CA that did not sign the server's certificate: check LOADTEST_ROOT_CERTIFICATES")
    return ("TLS at one end only, or a CA that did not sign the server's certificate? Check LOADTEST_ROOT_CERTIFICATES "
            "and that the server serves TLS under this host name" + (
                "" if client_certificate else
                f"; a server with mutual TLS also needs a client certificate ({CLIENT_CERTIFICATE})"))


def check_target(host: str, root_certificates: str = "", private_key: str = "", certificate_chain: str = "",
                 timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Raise TargetUnreachable unless ``host`` answers ``ServerReady`` and ``ModelReady`` of the ensemble with true
    within ``timeout_s`` (a call that fails to connect ends the check at once: it names the reason). The channel is
    the Locust users' (``open_channel``: TLS with ``root_certificates``, the client certificate when given)."""
    deadline = time.monotonic() + timeout_s
    not_ready = ""
    hint = {"tls": bool(root_certificates), "client_certificate": bool(certificate_chain)}
    with open_channel(host, root_certificates, private_key, certificate_chain) as ch:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
        while True:
            left = deadline - time.monotonic()
            try:
                if not stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=max(left, 0.01)).ready:
                    not_ready = "the server says it is not ready (ServerReady false)"
                elif not stub.ModelReady(service_pb2.ModelReadyRequest(name=MODEL_NAME), timeout=max(left, 0.01)).ready:
                    not_ready = f"the model {MODEL_NAME} is not ready (ModelReady false)"
                else:
                    logger.info("pre-flight: %s is ready", host)
                    return
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TargetUnreachable(
                        f"the load-test target {host} did not answer within {timeout_s:g} s ({details}); "
                        f"{unreachable_hint(details, **hint)}") from e
                raise TargetUnreachable(
                    f"the load-test target {host} failed its readiness check (KServe ServerReady/ModelReady): "
                    f"{code.name}: {details}; {unreachable_hint(details, **hint)}") from e
            if time.monotonic() + POLL_S >= deadline:
                raise TargetUnreachable(f"the load-test target {host} answers but did not become ready within "
                                        f"{timeout_s:g} s: {not_ready}; wait until it is ready (its health endpoint "
                                        "/v2/health/ready answers 200), then run again")
            time.sleep(POLL_S)
