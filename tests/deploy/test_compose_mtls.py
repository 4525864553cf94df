"""docker-compose.mtls.yml: mutual TLS under compose, merged over docker-compose.yml by Debian's docker-compose."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_compose import COMPOSE, ROOT, _compose, render

MTLS = ROOT / "docker-compose.mtls.yml"
CLIENT_CA_FLAG = "--tls-client-ca=/run/secrets/dermassist_tls_client_ca"
LOCUST_SERVICES = ("locust-master", "locust-worker")
DEMO_CERT_FLAGS = ["--private-key", "/run/secrets/dermassist_demo_client_key",
                   "--certificate-chain", "/run/secrets/dermassist_demo_client_cert"]


@pytest.fixture(scope="module")
def plain() -> dict:
    return render(COMPOSE)


@pytest.fixture(scope="module")
def mtls() -> dict:
    return render(COMPOSE, MTLS)


def _secret_names(service: dict) -> set[str]:
    return {s["source"] if isinstance(s, dict) else s for s in service.get("secrets", [])}


def test_the_mtls_variant_is_valid():
    done = _compose("-f", str(COMPOSE), "-f", str(MTLS), "config", "-q")
    assert done.returncode == 0, done.stderr


def test_the_guard_gets_the_client_ca_flag_and_its_secret(plain: dict, mtls: dict):
    """Compose replaces a command rather than extending it: the override's is the main file's plus the flag, so a
    change to the main command that the override misses fails here."""
    triton = mtls["services"]["triton"]
    assert triton["command"] == plain["services"]["triton"]["command"] + [CLIENT_CA_FLAG]
    name = CLIENT_CA_FLAG.split("=", 1)[1].removeprefix("/run/secrets/")
    assert name in _secret_names(triton)
    assert _secret_names(triton) == _secret_names(plain["services"]["triton"]) | {name}
    client_ca = Path(mtls["secrets"][name]["file"])
    assert client_ca.name == "client-ca.crt"
    # a trust anchor of its own: never the server's CA, nor a server certificate
    assert client_ca not in {Path(s["file"]) for key, s in mtls["secrets"].items() if key != name}


def test_dermassist_serve_reads_the_flag_as_its_client_ca(mtls: dict):
    """The flag is one `dermassist serve` (the image's entrypoint) takes, and it sets the client CA of mutual TLS."""
    from dermassist.commands.serve import add_arguments

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    args = parser.parse_args(mtls["services"]["triton"]["command"])
    assert args.tls_client_ca == "/run/secrets/dermassist_tls_client_ca"
    assert args.tls_cert and args.tls_key  # the guard refuses a client CA without its own TLS pair


def test_the_demo_calls_with_a_client_certificate_of_its_own(plain: dict, mtls: dict):
    """The demo page calls triton over gRPC: under mutual TLS it needs a client certificate (demo-client.*), trusting
    the server with the same ca.crt as before."""
    from dermassist_client.cli import build_parser

    demo = mtls["services"]["demo"]
    assert demo["command"][:len(plain["services"]["demo"]["command"])] == plain["services"]["demo"]["command"]
    assert demo["command"] == plain["services"]["demo"]["command"] + DEMO_CERT_FLAGS
    args = build_parser().parse_args(demo["command"])
    assert args.command == "demo" and args.ssl and args.url == "triton:8001"
    assert args.root_certificates == "/run/secrets/dermassist_ca"
    for path, file_name in ((args.private_key, "demo-client.key"), (args.certificate_chain, "demo-client.crt")):
        name = path.removeprefix("/run/secrets/")
        assert name in _secret_names(demo), name
        assert Path(mtls["secrets"][name]["file"]).name == file_name
    assert "dermassist_ca" in _secret_names(demo)


def _comparable(service: dict, ignored: set[str]) -> dict:
    # docker-compose 1.29 merges only the keys it knows, and pull_policy is not one of them (it prints the key of a
    # single file, never acts on it, and drops it from a merge); Compose v2 merges it. The override sets none (below).
    kept = {k: v for k, v in service.items() if k not in ignored | {"pull_policy"}}
    if "ports" in kept:
        kept["ports"] = sorted(kept["ports"])  # a merge reorders them
    return kept


def test_the_override_changes_nothing_else(plain: dict, mtls: dict):
    """Hardening, ports, volumes, health checks, images, the other services: as in the main file."""
    assert set(mtls["services"]) == set(plain["services"])
    for name, service in plain["services"].items():
        ignored = ({"command", "secrets"} if name in ("triton", "demo") else
                   {"environment", "secrets"} if name in LOCUST_SERVICES else set())
        assert _comparable(mtls["services"][name], ignored) == _comparable(service, ignored), name
    assert set(plain["secrets"]) < set(mtls["secrets"])
    raw = yaml.safe_load(MTLS.read_text())
    assert {name: set(service) for name, service in raw["services"].items()} == {
        "triton": {"command", "secrets"}, "demo": {"command", "secrets"},
        **dict.fromkeys(LOCUST_SERVICES, {"environment", "secrets"})}


def test_the_load_test_calls_with_a_client_certificate_of_its_own(plain: dict, mtls: dict):
    """Under mutual TLS the Locust services present loadtest-client.* (an operator's audit, finding 7: a capacity run
    could not go through the handshake clients do), keeping the main file's settings and its trust in ca.crt."""
    from loadtest.config import ScenarioConfig, variable_name

    for name in LOCUST_SERVICES:
        service, before = mtls["services"][name], plain["services"][name]
        environment = service["environment"]
        assert {k: v for k, v in environment.items() if k in before["environment"]} == before["environment"], name
        for field, file_name in (("private_key", "loadtest-client.key"), ("certificate_chain", "loadtest-client.crt")):
            path = environment[variable_name(ScenarioConfig, field)]
            secret = path.removeprefix("/run/secrets/")
            assert secret in _secret_names(service) and Path(mtls["secrets"][secret]["file"]).name == file_name, name
        assert _secret_names(before) < _secret_names(service), name


def test_the_bind_address_holds_under_mtls():
    triton = render(COMPOSE, MTLS, env={"DERMASSIST_GRPC_BIND": "10.20.30.40"})["services"]["triton"]
    assert "10.20.30.40:8001:8001/tcp" in triton["ports"]


def test_the_docs_make_the_files_the_override_reads():
    """docs/operations.md makes client-ca.crt and demo-client.crt/.key and shows the command that merges the file."""
    docs = (ROOT / "docs" / "operations.md").read_text()
    for file_name in ("client-ca.crt", "demo-client.crt", "demo-client.key", "loadtest-client.crt", "loadtest-client.key"):
        assert re.search(rf"-(?:out|keyout) {re.escape(file_name)}\b", docs), file_name
    assert "docker-compose -f docker-compose.yml -f docker-compose.mtls.yml up" in docs
    assert "DERMASSIST_GRPC_BIND" in docs
