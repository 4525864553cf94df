"""The dermassist ensemble on the real embedded Triton, over gRPC and HTTP."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from preprocess.contract import CLS_SIZE, ENSEMBLE_NAME, ENSEMBLE_OUTPUTS, NUM_CLASSES, SEG_SIZE, STEP_MODELS
from tests.conftest import HAM_IMAGES
from tests.support.images import encode, pil_bytes, png_bomb, synthetic_lesion
from tests.support.triton import infer

pytestmark = pytest.mark.integration

NUMPY_OF = {"TYPE_FP32": np.float32, "TYPE_UINT8": np.uint8, "TYPE_INT32": np.int32, "TYPE_BOOL": np.bool_,
            "TYPE_STRING": np.object_}


def _url(server, protocol: str) -> str:
    return server.config.grpc_address if protocol == "grpc" else server.config.http_address


def _size(blob: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(blob)) as im:
        return im.size


def check_contract(out: dict[str, np.ndarray], sizes: list[tuple[int, int]]) -> None:
    n = len(sizes)
    for spec in ENSEMBLE_OUTPUTS:
        assert out[spec.name].dtype == NUMPY_OF[spec.dtype], spec.name
        assert out[spec.name].shape == (n, *spec.dims), spec.name
    probs = out["PROBABILITIES"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    assert set(np.unique(out["MASK"])) <= {0, 255}
    for row, (width, height) in enumerate(sizes):
        x0, y0, x1, y1 = out["BBOX"][row].tolist()
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        fraction = float(out["LESION_FRACTION"][row, 0])
        assert fraction == pytest.approx(np.count_nonzero(out["MASK"][row]) / SEG_SIZE**2, abs=1e-6)
        if fraction == 0:
            assert [x0, y0, x1, y1] == [0, 0, width, height]
            assert b"No lesion found" in out["NOTE"][row, 0]
    refer_score = out["REFER_SCORE"][:, 0]
    np.testing.assert_allclose(refer_score, probs[:, [0, 1, 3, 6]].sum(axis=1), atol=1e-5)  # AK, BCC, MEL, SCC
    not_assessable = ~out["ASSESSABLE"][:, 0]
    assert (out["REFER"][:, 0] == ((refer_score >= 0.20) | not_assessable)).all()  # contract default threshold
    assert all(bool(note[0]) == bad or b"No lesion found" in note[0] for note, bad in zip(out["NOTE"], not_assessable))
    assert (out["OOD_SCORE"] >= 0).all() and (out["CAM"].max(axis=(1, 2)) == 255).all()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_real_images_follow_the_contract(triton_server, protocol: str, ham_jpeg: bytes, isic2017_jpeg: bytes) -> None:
    for blob in (ham_jpeg, isic2017_jpeg):
        out = infer(_url(triton_server, protocol), [blob], protocol)
        check_contract(out, [_size(blob)])
    assert out["CROP"].shape == (1, CLS_SIZE, CLS_SIZE, 3)


def test_real_lesion_is_found_by_the_darkness_segmenter(triton_server, ham_jpeg: bytes) -> None:
    out = infer(triton_server.config.grpc_address, [ham_jpeg])
    assert 0.0 < out["LESION_FRACTION"][0, 0] < 1.0


def test_jpeg_with_a_trailer_after_its_end_marker_gets_the_same_answer(triton_server, ham_jpeg: bytes) -> None:
    url = triton_server.config.grpc_address
    trailed = infer(url, [ham_jpeg + b"SEFH" + bytes(300) + b"SEFT"])
    plain = infer(url, [ham_jpeg])
    for name in ("PROBABILITIES", "BBOX", "REFER_SCORE"):
        np.testing.assert_array_equal(trailed[name], plain[name])


def test_batch_of_eight_mixed_images_matches_single_requests(triton_server, ham_jpeg: bytes, isic2017_jpeg: bytes) -> None:
    hams = [p.read_bytes() for p in sorted(HAM_IMAGES.glob("*.jpg"))[:4]]
    big = encode(synthetic_lesion(2000, 3000, seed=3), ".jpg")
    blobs = hams + [isic2017_jpeg, big, encode(synthetic_lesion(120, 90, seed=4), ".png"), ham_jpeg]
    url = triton_server.config.grpc_address
    batch = infer(url, blobs)
    check_contract(batch, [_size(b) for b in blobs])
    for row, blob in enumerate(blobs):
        single = infer(url, [blob])
        for name in single:
            if single[name].dtype.kind in "OUSb":  # text and flags: exactly equal
                np.testing.assert_array_equal(batch[name][row], single[name][0], err_msg=f"{name} row {row}")
            elif name == "CAM":  # the 0..255 map rounds a float that a batched matmul may move by 1e-7: one grey level
                diff = np.abs(batch[name][row].astype(np.int16) - single[name][0].astype(np.int16))
                assert diff.max() <= 1 and np.mean(diff > 0) < 0.001, f"CAM row {row}: {diff.max()} / {np.mean(diff > 0)}"
            else:
                np.testing.assert_allclose(batch[name][row], single[name][0], atol=1e-5, err_msg=f"{name} row {row}")


def test_sixteen_concurrent_requests_all_succeed(triton_server) -> None:
    blobs = [p.read_bytes() for p in sorted(HAM_IMAGES.glob("*.jpg"))[:16]]
    url = triton_server.config.grpc_address
    with ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(lambda b: infer(url, [b], timeout=120), blobs))
    assert len(outs) == 16
    for out in outs:
        check_contract(out, [(600, 450)])
    assert len({out["PROBABILITIES"].tobytes() for out in outs}) > 1


BAD_INPUTS = {
    "empty": (b"", "empty"),
    "not an image": (b"plain text, no picture at all", "not an image"),
    "webp": (pil_bytes(Image.fromarray(synthetic_lesion(64, 64)), "WEBP"), "WebP file, which is not accepted"),
    "truncated jpeg": (None, "truncated"),
    "too small": (encode(synthetic_lesion(20, 300), ".png"), "at least 32"),
    "png bomb": (png_bomb(30000), "megapixels"),
}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_an_error_for_that_request_only(triton_server, ham_jpeg: bytes, protocol: str, case: str) -> None:
    blob, message = BAD_INPUTS[case]
    blob = ham_jpeg[: len(ham_jpeg) // 2] if blob is None else blob
    url = _url(triton_server, protocol)
    with pytest.raises(InferenceServerException) as err:
        infer(url, [blob], protocol)
    assert message in err.value.message()
    if protocol == "grpc":
        assert "INVALID_ARGUMENT" in str(err.value.status())
    check_contract(infer(url, [ham_jpeg], protocol), [(600, 450)])


def test_bad_row_in_a_batch_is_named(triton_server, ham_jpeg: bytes) -> None:
    with pytest.raises(InferenceServerException, match="IMAGE row 1"):
        infer(triton_server.config.grpc_address, [ham_jpeg, b"junk", ham_jpeg])


def test_bad_request_does_not_fail_its_concurrent_neighbours(triton_server, ham_jpeg: bytes) -> None:
    url = triton_server.config.grpc_address

    def call(blob: bytes) -> str:
        try:
            infer(url, [blob], timeout=120)
            return "ok"
        except InferenceServerException:
            return "rejected"

    blobs = [ham_jpeg, b"junk"] * 6
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(call, blobs))
    assert results == ["ok", "rejected"] * 6


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_wrong_dtype_tensor_is_refused_then_server_still_answers(triton_server, ham_jpeg: bytes, protocol: str) -> None:
    lib = grpcclient if protocol == "grpc" else httpclient
    client = lib.InferenceServerClient(_url(triton_server, protocol))
    tensor = lib.InferInput("IMAGE", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 1), np.float32))
    with pytest.raises(InferenceServerException, match="(?i)data.?type|dtype|expected"):
        client.infer(ENSEMBLE_NAME, [tensor])
    client.close()
    check_contract(infer(_url(triton_server, protocol), [ham_jpeg], protocol), [(600, 450)])


def test_every_step_reports_compute_statistics(triton_server, ham_jpeg: bytes) -> None:
    infer(triton_server.config.grpc_address, [ham_jpeg])
    client = grpcclient.InferenceServerClient(triton_server.config.grpc_address)
    stats = client.get_inference_statistics(headers=triton_server.config.grpc_admin_headers,
                                            as_json=True)["model_stats"]
    by_name = {s["name"]: s for s in stats}
    for model in STEP_MODELS:
        infer_stats = by_name[model]["inference_stats"]
        assert int(infer_stats["success"]["count"]) >= 1
        assert int(infer_stats["compute_infer"]["ns"]) > 0
    assert int(by_name[ENSEMBLE_NAME]["inference_stats"]["success"]["count"]) >= 1
    outputs = {o["name"]: o for o in client.get_model_metadata(ENSEMBLE_NAME, as_json=True)["outputs"]}
    assert [int(d) for d in outputs["PROBABILITIES"]["shape"]] == [-1, NUM_CLASSES]
    client.close()


@pytest.mark.parametrize("names", [[spec.name] for spec in ENSEMBLE_OUTPUTS]
                         + [["PROBABILITIES", "MASK", "BBOX", "LESION_FRACTION"], ["MASK", "CROP"], ["CAM", "NOTE"]])
def test_any_subset_of_outputs_can_be_requested(triton_server, ham_jpeg: bytes, names: list[str]) -> None:
    """Triton prunes the steps a request does not need; each asked-for output comes back, equal to the full answer."""
    full = infer(triton_server.config.grpc_address, [ham_jpeg])
    part = infer(triton_server.config.grpc_address, [ham_jpeg], outputs=names)
    assert set(part) == set(names)
    for name in names:
        np.testing.assert_array_equal(part[name], full[name], err_msg=name)


@pytest.mark.parametrize("width,height", [(1500, 1100), (1025, 40), (32, 4000)])
def test_a_picture_with_no_lesion_gets_the_whole_original_as_its_box(triton_server, width: int, height: int) -> None:
    """Downscaled to the work image, these sides are not whole work pixels: the box must still reach every edge."""
    flat = encode(np.full((height, width, 3), (205, 160, 140), np.uint8), ".png")
    out = infer(triton_server.config.grpc_address, [flat])
    assert out["LESION_FRACTION"][0, 0] == 0
    check_contract(out, [(width, height)])


def test_a_jpeg_whose_coded_data_is_cut_short_is_refused_though_it_ends_with_its_end_marker(triton_server,
                                                                                          ham_jpeg: bytes) -> None:
    with pytest.raises(InferenceServerException) as err:
        infer(triton_server.config.grpc_address, [ham_jpeg[: len(ham_jpeg) // 2] + b"\xff\xd9"])
    assert "cannot be decoded in full" in err.value.message() and "INVALID_ARGUMENT" in str(err.value.status())
