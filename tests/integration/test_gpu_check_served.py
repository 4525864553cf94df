"""``dermassist gpu-check --url --images`` against a real server: its answers match the classifier run here on CPU."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dermassist.base.paths import HAM_SAMPLE_IMAGES as HAM_IMAGES
from dermassist.base.server import TritonServer
from dermassist.cli import main
from dermassist.gpu_parity import GpuCheckConfig, GpuCheckError, gpu_check

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gpu_check_images")
    for path in sorted(HAM_IMAGES.glob("*.jpg"))[:5]:
        shutil.copy(path, folder / path.name)
    (folder / "notes.txt").write_text("not an image: skipped by its suffix")
    return folder


def test_the_served_answers_are_the_cpu_classifiers_on_the_served_crops(triton_server: TritonServer,
                                                                        tiny_repository: Path, images: Path,
                                                                        tmp_path: Path) -> None:
    url = triton_server.config.grpc_address
    result = gpu_check(GpuCheckConfig(url=url, images=images, repository=tiny_repository))
    assert result["crops"] == 5 and result["device"] == url
    figures = result["settings"]["served"]
    # the embedded server runs the same TorchScript on CPU (frozen and optimised): the same decisions, within float noise
    assert result["agrees"] and figures["same_top_class"] == 1.0 and figures["same_refer"] == 1.0
    assert figures["max_abs_probability"] < 1e-4
    code = main(["gpu-check", "--url", url, "--images", str(images), "--repository", str(tiny_repository),
                 "--out", str(tmp_path)])
    assert code == 0 and "| " + url + " served |" in (tmp_path / "gpu_check.md").read_text()


def test_a_folder_without_images_is_named(triton_server: TritonServer, tiny_repository: Path, tmp_path: Path) -> None:
    with pytest.raises(GpuCheckError, match="holds no image files"):
        gpu_check(GpuCheckConfig(url=triton_server.config.grpc_address, images=tmp_path, repository=tiny_repository))
