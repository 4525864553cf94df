"""What the CPU-side tools say they measured: a GPU host's capacity comes from the distributed load test.

``dermassist bench`` measures the embedded CPU profile only; ``dermassist gpu-check --url`` tells whether a server's
answers agree with this CPU's classifier, not which device served them (it names the served classifier's platform).
"""
from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2


def test_bench_help_says_it_measures_the_embedded_cpu_profile_and_points_to_locust(capsys) -> None:
    from dermassist.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "embedded CPU profile only" in text
    assert "A GPU host's capacity is measured with distributed Locust" in text and "Load-testing a GPU host" in text


def _served_result(platform: dict) -> dict:
    figures = {"max_abs_probability": 5e-7, "same_top_class": 1.0, "same_refer": 1.0, "max_rel_ood": 1e-7,
               "max_cam_levels": 1, "cam_share_over_tolerance": 0.0, "agrees": True}
    return {"device": "10.0.0.7:8001", "torch": "2.x", "crops": 6, "refer_threshold": 0.066,
            "settings": {"served": figures}, "agrees": True, "served_classifier": platform}


def test_gpu_check_against_a_server_says_what_it_checked_and_not_the_device() -> None:
    """It printed 'GPU profile classifier check ... agrees: yes' against a CPU server."""
    from dermassist.gpu_parity import markdown

    text = " ".join(markdown(_served_result({"platform": "python"})).split())
    assert "GPU profile classifier check" not in text
    assert "Served answers check: 10.0.0.7:8001 against this machine's CPU classifier" in text
    assert "It does not tell which device served them" in text
    assert "platform `python`: the embedded CPU profile's classifier" in text and "not the GPU profile" in text
    assert "| 10.0.0.7:8001 served |" in text  # the row the served check's integration test reads
    libtorch = " ".join(markdown(_served_result({"platform": "pytorch_libtorch"})).split())
    assert "platform `pytorch_libtorch`: the GPU profile's classifier" in libtorch
    unread = " ".join(markdown(_served_result({"error": "UNAVAILABLE"})).split())
    assert "its platform could not be read (UNAVAILABLE)" in unread


@pytest.mark.parametrize("platform", ["python", "pytorch_libtorch"])
def test_gpu_check_reads_the_served_classifiers_platform_with_the_admin_key(platform: str, tmp_path: Path) -> None:
    """The guard shows an internal step's metadata only with the admin key: gpu-check sends the key of its
    --admin-key-file, and without one says which setting would read the platform."""
    from dermassist.base.server_config import GRPC_ADMIN_HEADER
    from dermassist.gpu_parity import GpuCheckConfig, served_platform

    def metadata(request: service_pb2.ModelMetadataRequest, context) -> service_pb2.ModelMetadataResponse:
        if dict(context.invocation_metadata()).get(GRPC_ADMIN_HEADER) != "s3cret":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"this API needs the admin key in the {GRPC_ADMIN_HEADER!r} "
                          "header")
        return service_pb2.ModelMetadataResponse(name=request.name, versions=["1"],
                                                 platform=platform if request.name == "lesion_classifier" else "ensemble")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(
            metadata, request_deserializer=service_pb2.ModelMetadataRequest.FromString,
            response_serializer=service_pb2.ModelMetadataResponse.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    (tmp_path / "key").write_text("s3cret\n")
    (tmp_path / "wrong").write_text("guess\n")
    url = f"127.0.0.1:{port}"
    try:
        assert served_platform(GpuCheckConfig(url=url, images=tmp_path, admin_key_file=tmp_path / "key")) == {
            "platform": platform}
        without = served_platform(GpuCheckConfig(url=url, images=tmp_path, timeout_s=5))["error"]
        assert "PERMISSION_DENIED" in without and "pass --admin-key-file" in without
        wrong = served_platform(GpuCheckConfig(url=url, images=tmp_path, admin_key_file=tmp_path / "wrong"))["error"]
        assert "check the admin key file" in wrong
    finally:
        server.stop(None)
    assert "error" in served_platform(GpuCheckConfig(url=url, images=tmp_path, timeout_s=2))


def test_gpu_check_refuses_an_admin_key_file_it_cannot_use(tmp_path: Path) -> None:
    from dermassist.gpu_parity import GpuCheckConfig, GpuCheckError

    (tmp_path / "empty").write_text("\n")
    (tmp_path / "crops.npz").write_bytes(b"")
    with pytest.raises(GpuCheckError, match="--admin-key-file: the admin key file .*empty"):
        GpuCheckConfig(url="localhost:8001", images=tmp_path, admin_key_file=tmp_path / "empty")
    with pytest.raises(GpuCheckError, match="--admin-key-file: cannot read the admin key file"):
        GpuCheckConfig(url="localhost:8001", images=tmp_path, admin_key_file=tmp_path / "absent")
    with pytest.raises(GpuCheckError, match="--admin-key-file goes with --url"):
        GpuCheckConfig(crops=tmp_path / "crops.npz", admin_key_file=tmp_path / "empty")
