"""Security audit findings 2, 3 and 11: what the admin key opens through the front, every admin call in the audit
trail, wrong keys slowed down, a weak key refused at start, internal steps' metadata and Triton's version kept from
callers without the key."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.errors import ConfigError
from dermassist.base.server_config import GRPC_ADMIN_HEADER, ServerConfig
from dermassist.guard.admin import MAX_WRONG_KEYS, MIN_ADMIN_KEY_CHARS, WrongKeys, peer_address
from dermassist.guard.config import GuardConfig
from dermassist.guard.guard import Guard
from tests.support.guard import audit_lines

from .loopback import ADMIN_KEY, TRITON_VERSION, front_before_stand_in

RIGHT = ((GRPC_ADMIN_HEADER, ADMIN_KEY),)
WRONG = ((GRPC_ADMIN_HEADER, "not-the-operator-key"),)


@pytest.fixture
def front(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """The front before a stand-in Triton, and a stub of Triton's service through it."""
    with front_before_stand_in(tmp_path / "audit.jsonl") as served:
        channel = grpc.insecure_channel(served.address)
        served.stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            yield served
        finally:
            channel.close()


def _load(model: str, **parameters: str | bytes) -> service_pb2.RepositoryModelLoadRequest:
    request = service_pb2.RepositoryModelLoadRequest(model_name=model)
    for name, value in parameters.items():
        if isinstance(value, bytes):
            request.parameters[name].bytes_param = value
        else:
            request.parameters[name].string_param = value
    return request


def _refused(call, request, metadata) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=metadata, timeout=10)
    return info.value


# --- finding 2: the admin key is not code execution -------------------------------------------------------------


def test_a_load_with_uploaded_files_or_a_config_override_is_refused_even_with_the_key(front) -> None:
    attacks = [
        _load("triage", **{"file:1/model.py": b"import os\nclass TritonPythonModel: ..."}),
        _load("auditpoc", config='{"name": "auditpoc", "backend": "python"}',
              **{"file:1/model.py": b"class TritonPythonModel: ..."}),
        _load("prepare", config='{"backend": "python"}'),
    ]
    for request in attacks:
        error = _refused(front.stub.RepositoryModelLoad, request, RIGHT)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "RepositoryModelLoad" in error.details() and "refused" in error.details()
    assert "'file:1/model.py'" in _refused(front.stub.RepositoryModelLoad, attacks[0], RIGHT).details()
    assert "'config'" in _refused(front.stub.RepositoryModelLoad, attacks[2], RIGHT).details()
    assert "run code" in _refused(front.stub.RepositoryModelLoad, attacks[2], RIGHT).details()
    assert front.received == []  # Triton never saw any of them
    lines = audit_lines(front.audit)
    assert {(line["admin_call"], line["status"], line["admin_key"]) for line in lines} == {
        ("RepositoryModelLoad", "PERMISSION_DENIED", "right")}
    assert {line["model"] for line in lines} == {"triage", "auditpoc", "prepare"}


def test_only_the_repositorys_own_models_are_loaded_or_unloaded(front) -> None:
    error = _refused(front.stub.RepositoryModelLoad, _load("auditpoc"), RIGHT)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "'auditpoc'" in error.details()
    assert "repository's own models" in error.details() and "'prepare'" in error.details()
    unload = service_pb2.RepositoryModelUnloadRequest(model_name="../auditpoc")
    assert _refused(front.stub.RepositoryModelUnload, unload, RIGHT).code() == grpc.StatusCode.PERMISSION_DENIED
    assert front.received == [] and front.front.guard.identity_reads == []  # refused: nothing loaded
    step = _refused(front.stub.RepositoryModelLoad, _load("triage"), RIGHT)  # a step alone: a mixed pipeline
    assert step.code() == grpc.StatusCode.PERMISSION_DENIED and "load the ensemble 'dermassist'" in step.details()
    assert front.received == [] and front.front.guard.identity_reads == []
    front.stub.RepositoryModelLoad(_load("dermassist"), metadata=RIGHT, timeout=10)  # a reload from the repository
    front.stub.RepositoryModelUnload(service_pb2.RepositoryModelUnloadRequest(model_name="triage"), metadata=RIGHT,
                                     timeout=10)
    assert [name for name, _ in front.received] == ["RepositoryModelLoad", "RepositoryModelUnload"]
    # each changed what is served: the answers name no build while Triton changes it, then the one read again; the
    # stubs it stopped are no faults for a while after
    assert front.front.guard.identity_reads == ["forget", "changed", "read", "forget", "changed", "read"]
    assert [(line["admin_call"], line["model"], line["status"]) for line in audit_lines(front.audit)][-2:] == [
        ("RepositoryModelLoad", "dermassist", "OK"), ("RepositoryModelUnload", "triage", "OK")]
    front.stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), metadata=RIGHT, timeout=10)
    assert len(front.front.guard.identity_reads) == 6  # an index loads nothing


def test_log_and_trace_settings_cannot_name_a_file(front) -> None:
    request = service_pb2.LogSettingsRequest()
    request.settings["log_file"].string_param = "/etc/cron.d/x"
    error = _refused(front.stub.LogSettings, request, RIGHT)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "'log_file'" in error.details()
    front.stub.LogSettings(service_pb2.LogSettingsRequest(), metadata=RIGHT, timeout=10)
    assert [name for name, _ in front.received] == ["LogSettings"]


# --- finding 3: admin calls audited, wrong keys slowed down, weak keys refused ----------------------------------


def test_every_admin_call_is_audited_allowed_or_refused_and_never_with_the_key(front) -> None:
    front.stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), metadata=RIGHT, timeout=10)
    for metadata in (WRONG, ()):
        error = _refused(front.stub.RepositoryIndex, service_pb2.RepositoryIndexRequest(), metadata)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "admin key" in error.details()
    lines = audit_lines(front.audit)
    assert [(line["admin_call"], line["extension"], line["admin_key"], line["status"]) for line in lines] == [
        ("RepositoryIndex", "model-repository", "right", "OK"),
        ("RepositoryIndex", "model-repository", "wrong", "PERMISSION_DENIED"),
        ("RepositoryIndex", "model-repository", "none", "PERMISSION_DENIED")]
    assert all(line["peer"].startswith("ipv4:127.0.0.1:") for line in lines)
    text = front.audit.read_text()
    assert ADMIN_KEY not in text and "not-the-operator-key" not in text


def test_repeated_wrong_keys_lock_the_address_out_even_for_the_right_key(front, caplog) -> None:
    for _ in range(MAX_WRONG_KEYS):
        _refused(front.stub.RepositoryIndex, service_pb2.RepositoryIndexRequest(), WRONG)
    error = _refused(front.stub.RepositoryIndex, service_pb2.RepositoryIndexRequest(), RIGHT)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "too many wrong admin keys" in error.details()
    assert front.received == []
    assert audit_lines(front.audit)[-1]["admin_key"] == "not checked: too many wrong keys"
    assert any("wrong admin keys from ipv4:127.0.0.1" in m for m in caplog.messages)
    # the inference path (an internal step) and the server metadata check the key the same way
    assert front.front.key_check(SimpleNamespace(invocation_metadata=lambda: [SimpleNamespace(
        key=GRPC_ADMIN_HEADER, value=ADMIN_KEY)], peer=lambda: "ipv4:127.0.0.1:1")) != "right"


def test_wrong_keys_are_counted_in_a_window_per_address_with_bounded_memory() -> None:
    keys = WrongKeys(limit=3, window_s=60.0, max_peers=5)
    assert not keys.record("a", now=0.0) and not keys.record("a", now=1.0)
    assert keys.record("a", now=2.0) and keys.locked_for("a", now=2.0) == pytest.approx(58.0)
    assert keys.locked_for("b", now=2.0) == 0.0
    assert keys.locked_for("a", now=60.5) == 0.0  # the oldest wrong key left the window
    for i in range(100):
        keys.record(f"peer-{i}", now=3.0)
    assert len(keys) == 5
    assert peer_address("ipv4:10.1.2.3:49854") == "ipv4:10.1.2.3"
    assert peer_address("ipv6:[::1]:5000") == "ipv6:[::1]" and peer_address("unix:/tmp/s") == "unix:/tmp/s"


def test_a_short_admin_key_is_refused_at_start_with_how_to_make_one(tmp_path: Path) -> None:
    config = GuardConfig(audit_log=str(tmp_path / "audit.jsonl"))
    with pytest.raises(ConfigError) as info:
        Guard(ServerConfig(repository=tmp_path, admin_key="a"), config)
    message = str(info.value)
    assert f"at least {MIN_ADMIN_KEY_CHARS}" in message and "1 character long" in message
    assert "secrets.token_urlsafe(32)" in message and "--admin-key-file" in message
    with pytest.raises(ConfigError, match="15 characters long"):
        Guard(ServerConfig(repository=tmp_path, admin_key="x" * 15), config)
    Guard(ServerConfig(repository=tmp_path, admin_key="x" * MIN_ADMIN_KEY_CHARS), config).audit.close()
    Guard(ServerConfig(repository=tmp_path), config).audit.close()  # none configured: a random one for the run


# --- finding 11: internal steps and Triton's version are the admin's ------------------------------------------


def test_internal_steps_metadata_needs_the_key_and_the_ensembles_does_not(front) -> None:
    request = service_pb2.ModelMetadataRequest(name="prepare")
    error = _refused(front.stub.ModelMetadata, request, ())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "admin key" in error.details()
    assert front.stub.ModelMetadata(request, metadata=RIGHT, timeout=10).name == "step"
    front.stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="dermassist"), timeout=10)
    assert [name for name, _ in front.received] == ["ModelMetadata", "ModelMetadata"]


def test_internal_steps_readiness_needs_the_key_as_their_metadata_does(front) -> None:
    """A gRPC integrator's audit, finding 4: ModelReady listed the internal steps to any caller."""
    error = _refused(front.stub.ModelReady, service_pb2.ModelReadyRequest(name="prepare"), ())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "admin key" in error.details()
    assert front.stub.ModelReady(service_pb2.ModelReadyRequest(name="prepare"), metadata=RIGHT, timeout=10).ready
    assert front.stub.ModelReady(service_pb2.ModelReadyRequest(name="dermassist"), timeout=10).ready
    assert [name for name, _ in front.received] == ["ModelReady", "ModelReady"]
    refused, allowed = [line for line in audit_lines(front.audit) if line.get("admin_call") == "ModelReady"]
    assert (refused["model"], refused["status"], allowed["status"]) == ("prepare", "PERMISSION_DENIED", "OK")


@pytest.mark.parametrize("name", ["dermasist", "Dermassist", ""])
def test_readiness_and_metadata_of_a_model_not_served_are_not_found(front, name: str) -> None:
    """ModelReady of a misspelt name answered "not ready": a probe written with it waited on a service that was never
    going to be ready (Node.js integrator audit, N8). Nothing reaches Triton, the key or not."""
    for call, request in ((front.stub.ModelReady, service_pb2.ModelReadyRequest(name=name)),
                          (front.stub.ModelMetadata, service_pb2.ModelMetadataRequest(name=name))):
        for metadata in ((), RIGHT):
            error = _refused(call, request, metadata)
            assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND,
                                                       f"no model named '{name}'; clients call 'dermassist'")
    assert front.received == []


def test_the_triton_version_is_told_only_to_a_caller_with_the_key(front) -> None:
    public = front.stub.ServerMetadata(service_pb2.ServerMetadataRequest(), timeout=10)
    admin = front.stub.ServerMetadata(service_pb2.ServerMetadataRequest(), metadata=RIGHT, timeout=10)
    assert public.version == "" and public.name == "triton" and list(public.extensions) == ["parameters"]
    assert admin.version == TRITON_VERSION and "model_repository" in admin.extensions
