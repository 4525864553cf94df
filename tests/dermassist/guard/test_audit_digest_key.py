"""The audit digest under a site key (privacy audit M-level: the trail's plain SHA-256 let anyone holding a picture
find whether, when and from where it was analysed, and the answer)."""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2

from dermassist.base.errors import ConfigError
from dermassist.guard.audit import digest, request_images
from dermassist.guard.config import MIN_DIGEST_KEY_CHARS, GuardConfig
from preprocess.contract import ENSEMBLE_NAME

from .loopback import front_before_stand_in

KEY = "k3y-of-the-site-" + "x" * 24


def _key_file(folder: Path, text: str = KEY + "\n") -> Path:
    path = folder / "audit-digest.key"
    path.write_text(text)
    return path


def test_a_digest_under_a_key_is_the_hmac_sha256_computed_by_hand_and_not_the_plain_sha256() -> None:
    data = b"\xff\xd8 a picture's bytes"
    by_hand = hmac.new(KEY.encode(), data, hashlib.sha256).hexdigest()
    assert digest(data, KEY.encode()) == {"hmac_sha256": by_hand, "bytes": len(data)}
    assert digest(data) == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert by_hand != hashlib.sha256(data).hexdigest()


def test_every_image_of_a_request_is_digested_under_the_key() -> None:
    images = [b"first picture", b"second picture"]
    request = service_pb2.ModelInferRequest(model_name=ENSEMBLE_NAME)
    tensor = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[2, 1])
    tensor.contents.bytes_contents.extend(images)
    entries = request_images(request, KEY.encode())
    assert entries == [{"hmac_sha256": hmac.new(KEY.encode(), image, hashlib.sha256).hexdigest(), "bytes": len(image)}
                       for image in images]


def test_the_key_is_read_from_its_file_and_taken_from_the_environment(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    assert GuardConfig(audit_digest_key_file=str(path)).audit_digest_secret == KEY.encode()  # the line's end stripped
    assert GuardConfig().audit_digest_secret is None
    resolved = GuardConfig.resolve({}, environ={"DERMASSIST_AUDIT_DIGEST_KEY_FILE": str(path)})
    assert resolved.audit_digest_key_file == path and resolved.audit_digest_secret == KEY.encode()


@pytest.mark.parametrize(("case", "said"), [
    ("missing", "audit_digest_key_file names no file (a value of {length} characters, not shown: it may be the key "
                "itself); pass --audit-digest-key-file / DERMASSIST_AUDIT_DIGEST_KEY_FILE the path of a file holding the "
                "key, not the key"),
    ("folder", "audit_digest_key_file {path} is a folder"),
    ("empty", "the audit digest key file {path} is empty; write the key into it"),
    ("short", f"the audit digest key in {{path}} is 12 characters long; expected at least {MIN_DIGEST_KEY_CHARS}"),
])
def test_a_key_file_that_cannot_serve_stops_the_start_naming_it_and_the_fix(tmp_path: Path, case: str, said: str) -> None:
    path = tmp_path / "audit-digest.key"
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.write_text("\n")
    elif case == "short":
        path.write_text("twelve-chars\n")
    with pytest.raises(ConfigError) as info:
        GuardConfig(audit_digest_key_file=path)
    assert said.format(path=path, length=len(str(path))) in str(info.value)
    if case == "short":
        assert "secrets.token_urlsafe(32)" in str(info.value) and "twelve-chars" not in str(info.value)


def test_the_fronts_audit_line_holds_the_keyed_digest_of_each_picture(tmp_path: Path, ham_jpeg: bytes) -> None:
    audit = tmp_path / "audit.jsonl"
    config = GuardConfig(audit_log=str(audit), audit_digest_key_file=_key_file(tmp_path))
    with front_before_stand_in(audit, config) as served:
        client = grpcclient.InferenceServerClient(served.address)
        tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[ham_jpeg]], dtype=object))
        try:
            client.infer(ENSEMBLE_NAME, [tensor], client_timeout=20)
        finally:
            client.close()
    (line,) = [json.loads(text) for text in audit.read_text().splitlines()]
    (image,) = line["images"]
    assert image["hmac_sha256"] == hmac.new(KEY.encode(), ham_jpeg, hashlib.sha256).hexdigest()
    assert "sha256" not in image and hashlib.sha256(ham_jpeg).hexdigest() not in audit.read_text()
    assert line["digest_key"] == hmac.new(KEY.encode(), b"dermassist audit digest key id", hashlib.sha256).hexdigest()[:8]


def test_a_key_given_where_its_file_is_expected_is_not_echoed() -> None:
    """DERMASSIST_ADMIN_KEY holds a key, so an operator set the digest key's variable to the key: the refusal printed
    the secret to the container's log (review 23, M4)."""
    secret = "Zq3-very-secret-site-key-0123456789abcdef"
    with pytest.raises(ConfigError) as info:
        GuardConfig.resolve({}, environ={"DERMASSIST_AUDIT_DIGEST_KEY_FILE": secret})
    assert secret not in str(info.value) and "not shown: it may be the key itself" in str(info.value)


def test_a_line_without_a_key_names_none() -> None:
    from dermassist.guard.audit import build_record

    record = build_record(None, request_id="r", peer="p", client=None, versions={}, status="OK", error=None,
                          latency_ms=1.0)
    assert "digest_key" not in record
