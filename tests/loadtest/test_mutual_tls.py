"""A client certificate for a server with mutual TLS (operator audit, finding 7): settings checked, the pre-flight
naming a missing or a refused client certificate, the channel presenting it (a stand-in server requiring one)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from loadtest.config import ScenarioConfig
from loadtest.errors import LoadtestConfigError, LocustRunError, TargetUnreachable
from loadtest.preflight import check_target


def test_a_client_certificate_needs_both_files_readable_pem_and_tls(fake_dermassist, tmp_path: Path) -> None:
    fake = fake_dermassist
    with pytest.raises(LoadtestConfigError, match=re.escape(
            f"LOADTEST_PRIVATE_KEY is set ({fake.client_key}) but LOADTEST_CERTIFICATE_CHAIN is not: a client "
            "certificate for mutual TLS needs both the private key and the certificate chain (PEM); set "
            "--certificate-chain / LOADTEST_CERTIFICATE_CHAIN, or unset both")):
        ScenarioConfig(root_certificates=fake.ca, private_key=fake.client_key)
    with pytest.raises(LoadtestConfigError, match="LOADTEST_CERTIFICATE_CHAIN is set .* LOADTEST_PRIVATE_KEY is not"):
        ScenarioConfig(root_certificates=fake.ca, certificate_chain=fake.client_cert)
    with pytest.raises(LoadtestConfigError, match="LOADTEST_ROOT_CERTIFICATES is not: a client certificate is presented "
                                                  "over TLS only"):
        ScenarioConfig(private_key=fake.client_key, certificate_chain=fake.client_cert)
    missing = tmp_path / "absent.key"
    with pytest.raises(LoadtestConfigError, match=re.escape(f"private_key file {missing} (--private-key / "
                                                            "LOADTEST_PRIVATE_KEY) cannot be read (No such file")):
        ScenarioConfig(root_certificates=fake.ca, private_key=str(missing), certificate_chain=fake.client_cert)
    with pytest.raises(LoadtestConfigError, match="private_key file .* is not a PEM private key: .* swapped"):
        ScenarioConfig(root_certificates=fake.ca, private_key=fake.client_cert, certificate_chain=fake.client_key)
    if os.geteuid() != 0:  # root reads any file
        unreadable = tmp_path / "unreadable.crt"
        unreadable.write_bytes(Path(fake.client_cert).read_bytes())
        unreadable.chmod(0)
        with pytest.raises(LoadtestConfigError, match="certificate_chain file .* cannot be read \\(Permission denied"):
            ScenarioConfig(root_certificates=fake.ca, private_key=fake.client_key, certificate_chain=str(unreadable))
    config = ScenarioConfig.resolve({"certificate_chain": fake.client_cert}, {
        "LOADTEST_ROOT_CERTIFICATES": fake.ca, "LOADTEST_PRIVATE_KEY": fake.client_key,
        "LOADTEST_CERTIFICATE_CHAIN": str(missing)})  # the flag wins over the variable
    assert (config.private_key, config.certificate_chain) == (fake.client_key, fake.client_cert)
    assert ScenarioConfig.resolve({}, config.to_env()) == config  # what every Locust process reads


def test_the_root_certificates_must_be_a_readable_pem_certificate(fake_dermassist, tmp_path: Path) -> None:
    """The CA file is checked as the guard checks its own (one ``pem_problem``): before, only that it existed, so a
    key given as the CA failed later at the handshake with gRPC's words."""
    fake = fake_dermassist
    missing = tmp_path / "absent.crt"
    with pytest.raises(LoadtestConfigError, match=re.escape(
            f"root_certificates file {missing} (--root-certificates / LOADTEST_ROOT_CERTIFICATES) cannot be read (No "
            "such file")):
        ScenarioConfig(root_certificates=str(missing))
    with pytest.raises(LoadtestConfigError, match="root_certificates file .* is not a PEM certificate: .* give the CA "
                                                  "of the server's certificate"):
        ScenarioConfig(root_certificates=fake.client_key)
    trusted = tmp_path / "trusted.crt"  # openssl x509 -trustout writes this block; gRPC and the guard read it
    trusted.write_text(Path(fake.ca).read_text().replace("BEGIN CERTIFICATE", "BEGIN TRUSTED CERTIFICATE")
                       .replace("END CERTIFICATE", "END TRUSTED CERTIFICATE"))
    assert ScenarioConfig(root_certificates=str(trusted), private_key=fake.client_key,
                          certificate_chain=str(trusted)).root_certificates == str(trusted)


def test_the_preflight_names_a_missing_or_refused_client_certificate(fake_dermassist) -> None:
    """gRPC's client sees 'Socket closed' when the server closes the connection after the handshake: the load test
    said 'TLS at one end only, or a CA that did not sign the server's certificate' for a server asking for a client
    certificate."""
    fake = fake_dermassist
    with pytest.raises(TargetUnreachable, match=re.escape(
            "the server requires a client certificate (mutual TLS, --tls-client-ca)? Set LOADTEST_PRIVATE_KEY and "
            "LOADTEST_CERTIFICATE_CHAIN to a client key and certificate its client CA signed")):
        check_target(fake.mtls, fake.ca, timeout_s=5)
    with pytest.raises(TargetUnreachable, match="a client certificate its client CA \\(--tls-client-ca\\) did not sign"):
        check_target(fake.mtls, fake.ca, fake.stranger_key, fake.stranger_cert, timeout_s=5)
    check_target(fake.mtls, fake.ca, fake.client_key, fake.client_cert, timeout_s=5)
    check_target(fake.tls, fake.ca, fake.client_key, fake.client_cert, timeout_s=5)  # a server that asks for none
    with pytest.raises(TargetUnreachable, match="TLS at one end only") as plain:  # TLS client, plain server
        check_target(fake.plain, fake.ca, timeout_s=5)
    assert "a server with mutual TLS also needs a client certificate" in str(plain.value)
    assert "requires a client certificate" not in str(plain.value)  # told apart from mutual TLS


def test_the_runner_passes_the_client_certificate_flags(fake_dermassist, monkeypatch, tmp_path: Path, caplog) -> None:
    """--root-certificates, --private-key and --certificate-chain reach the pre-flight and, through LOADTEST_*
    variables, every Locust process (test_answers runs one against the mutual-TLS port)."""
    from loadtest import run

    started: list[ScenarioConfig] = []

    def stand_in(_run, scenario: ScenarioConfig, _host: str):
        started.append(scenario)
        raise LocustRunError("stopped by the test before Locust")

    monkeypatch.setattr(run, "run_locust", stand_in)
    fake = fake_dermassist
    assert run.main(["--host", fake.mtls, "--root-certificates", fake.ca, "--report-dir", str(tmp_path)]) == 2
    assert started == [] and "requires a client certificate (mutual TLS" in caplog.text  # refused before the run
    assert run.main(["--host", fake.mtls, "--root-certificates", fake.ca, "--private-key", fake.client_key,
                     "--certificate-chain", fake.client_cert, "--report-dir", str(tmp_path)]) == 2
    assert "stopped by the test before Locust" in caplog.text  # the pre-flight passed, with the certificate
    env = started[0].to_env()
    assert (env["LOADTEST_PRIVATE_KEY"], env["LOADTEST_CERTIFICATE_CHAIN"]) == (fake.client_key, fake.client_cert)
