"""Client pieces that need no server: contract copy, config validation, encoding, results, overlay, retries."""
from __future__ import annotations

import asyncio
import io
import logging
import re
from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from tritonclient.utils import InferenceServerException

import dermassist_client.classes as client_contract
import dermassist_client.retry as retry_module
from dermassist_client import (
    CLASSES,
    AsyncDermAssistClient,
    ClientConfig,
    ClientConfigError,
    ConnectionSetupError,
    DermAssistClient,
    InvalidImageError,
    PartialBatchError,
    RequestTooLargeError,
    ResultError,
    ServerError,
    ServerUnavailableError,
)
from dermassist_client.batching import MESSAGE_OVERHEAD_BYTES, chunks, request_parts, results_of
from dermassist_client.images import EncodedImage, encode_image
from dermassist_client.overlay import OUTLINE_INNER, OUTLINE_OUTER, draw_overlay
from dermassist_client.result import build_result
from dermassist_client.retry import backoff_s, call_with_retries
from dermassist_client.translate import tls_hint, translate
from dermassist_client.transport import RawAnswer, grpc_channel_args, grpc_tls_kwargs, http_ssl_options, new_request_id
from preprocess import contract


def test_client_contract_equals_server_contract():
    assert [(c.index, c.code, c.name) for c in CLASSES] == [(c.index, c.code, c.name) for c in contract.CLASSES]
    assert client_contract.MODEL_NAME == contract.ENSEMBLE_NAME
    assert client_contract.MAX_BATCH_SIZE == contract.MAX_BATCH_SIZE
    assert client_contract.SEG_SIZE == contract.SEG_SIZE
    assert client_contract.CROP_SIZE == contract.CLS_SIZE
    assert client_contract.INPUT_IMAGE == contract.IMAGE.name
    assert client_contract.INPUT_DATATYPE == contract.IMAGE_WIRE_DATATYPE
    assert client_contract.CORE_OUTPUTS == (contract.PROBABILITIES.name, contract.MASK.name,
                                            contract.BBOX.name, contract.LESION_FRACTION.name)
    assert client_contract.OUTPUT_CROP == contract.CROP.name
    for name in ("REFER", "REFER_SCORE", "ASSESSABLE", "OOD_SCORE", "NOTE", "CAM"):
        assert getattr(client_contract, f"OUTPUT_{name}") == getattr(contract, name).name
    assert client_contract.REFER_CLASSES == contract.REFER_CLASSES
    assert client_contract.MAX_IMAGE_PIXELS == contract.MAX_IMAGE_PIXELS


def test_the_verdicts_score_meaning_names_the_referral_classes():
    from dermassist_client.verdict import SCORE_MEANING

    assert SCORE_MEANING == ("the model's estimated probability of melanoma, basal cell carcinoma, squamous cell "
                             "carcinoma or actinic keratosis")


def _png_with_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A 1x1 grey PNG with these chunks after its header (CRCs computed), as a camera or editor writes them."""
    import struct
    import zlib

    def chunk(name: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(chunk(n, d) for n, d in chunks) + pixels + chunk(b"IEND", b"")


def test_client_image_formats_mirror_the_servers_decoder():
    """The client names a file's format from its first bytes as the server's decoder does (a tested mirror:
    the client never imports preprocess)."""
    from dermassist_client.images import _BMP_INFO_HEADER_SIZES as CLIENT_BMP
    from dermassist_client.images import _MAGIC as CLIENT_MAGIC
    from dermassist_client.images import sniff_format as client_sniff
    from preprocess.decode import _BMP_INFO_HEADER_SIZES as SERVER_BMP
    from preprocess.decode import _MAGIC as SERVER_MAGIC
    from preprocess.decode import sniff_format as server_sniff

    assert CLIENT_MAGIC == SERVER_MAGIC and CLIENT_BMP == SERVER_BMP
    from dermassist_client.images import _PNG_CHUNK_LIMIT as CLIENT_CHUNK_LIMIT
    from dermassist_client.images import _png_chunk as client_chunk
    from preprocess.decode import _PNG_CHUNK_LIMIT as SERVER_CHUNK_LIMIT
    from preprocess.decode import _png_chunk as server_chunk

    assert CLIENT_CHUNK_LIMIT == SERVER_CHUNK_LIMIT
    png = _png_with_chunks([(b"iCCP", b"profile bytes"), (b"eXIf", b"MM\x00*")])
    for name in (b"iCCP", b"eXIf", b"tEXt"):
        assert client_chunk(png, name) == server_chunk(png, name), name
    assert client_chunk(png, b"iCCP") == b"profile bytes" and client_chunk(png, b"tEXt") is None
    from PIL import Image

    from dermassist_client.images import PIL_READ_ERRORS as CLIENT_PIL_ERRORS
    from preprocess.decode import PIL_READ_ERRORS as SERVER_PIL_ERRORS

    assert set(CLIENT_PIL_ERRORS) == {*SERVER_PIL_ERRORS, Image.DecompressionBombError}  # what a bad header raises
    bmp_headers = b"BM" + bytes(12) + (40).to_bytes(4, "little")
    assert client_sniff(bmp_headers) == server_sniff(bmp_headers) == "BMP"
    text = b"BM, the initials on this referral letter"
    assert client_sniff(text) is None
    with pytest.raises(Exception, match="not an image"):
        server_sniff(text)


def test_result_reads_the_triage_outputs_when_present_and_none_when_absent():
    outputs = {
        **_outputs(),
        "REFER": np.array([[True]]), "REFER_SCORE": np.array([[0.62]], np.float32),
        "ASSESSABLE": np.array([[False]]), "OOD_SCORE": np.array([[1.5]], np.float32),
        "NOTE": np.array([[b"image too blurred: sharpness 0.40 of the minimum"]], dtype=object),
        "CAM": np.full((1, 224, 224), 7, np.uint8),
    }
    result = build_result(outputs, 0, (600, 450), "dermassist", "1")
    assert result.refer is True and result.assessable is False
    assert result.refer_score == pytest.approx(0.62) and result.ood_score == pytest.approx(1.5)
    assert result.note.startswith("image too blurred") and result.cam.shape == (224, 224)
    summary = result.to_dict()
    assert summary["refer"] is True and summary["note"] == result.note and "cam" not in summary
    old = build_result(_outputs(), 0, (600, 450), "dermassist", "1")
    assert old.refer is None and old.refer_score is None and old.note == "" and old.cam is None


@pytest.mark.parametrize("kwargs, fragment", [
    ({"url": "http://127.0.0.1:8001"}, "without a scheme"),
    ({"url": "127.0.0.1"}, "HOST:PORT"),
    ({"url": "127.0.0.1:70000"}, "between 1 and 65535"),
    ({"url": "h:1", "protocol": "ftp"}, "protocol must be one of grpc, http"),
    ({"url": "h:1", "timeout_s": 0}, "timeout_s must be a positive"),
    ({"url": "h:1", "retries": -1}, "retries must be an integer >= 0"),
    ({"url": "h:1", "max_batch_size": 33}, "max_batch_size must be between 1"),
    ({"url": "h:1", "model_version": "latest"}, "model_version must be empty .* or a version number above 0"),
    ({"url": "h:1", "model_version": "0"}, "version number above 0"),
    ({"url": "h:1", "model_version": 1}, "as a string"),
    ({"url": "h:1", "root_certificates": "/nonexistent.pem"}, "ssl is off"),
    ({"url": "h:1", "ssl": True, "root_certificates": "/nonexistent.pem"}, "does not exist"),
])
def test_config_rejects_bad_settings(kwargs, fragment):
    with pytest.raises(ClientConfigError, match=fragment):
        ClientConfig(**kwargs)


def test_a_version_number_or_none_is_a_model_version() -> None:
    """'latest' was taken, and every call then failed as 'the server rejected the image' (a batch: every image)."""
    assert ClientConfig(url="h:1", model_version="12").model_version == "12"
    assert ClientConfig(url="h:1").model_version == ""


def test_config_is_frozen_and_tls_needs_key_with_chain(tmp_path):
    import trustme

    pem = tmp_path / "c.pem"  # a key and its certificate in one file: it serves as CA, key and chain alike
    trustme.CA().issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(pem)
    with pytest.raises(ClientConfigError, match="go together"):
        ClientConfig(url="h:1", ssl=True, certificate_chain=pem)
    config = ClientConfig(url="[::1]:8001", ssl=True, root_certificates=str(pem), private_key=pem, certificate_chain=pem)
    with pytest.raises(FrozenInstanceError):
        config.url = "other:1"
    assert grpc_tls_kwargs(config) == {"ssl": True, "root_certificates": str(pem), "private_key": str(pem),
                                       "certificate_chain": str(pem)}
    assert http_ssl_options(config) == {"ca_certs": str(pem), "certfile": str(pem), "keyfile": str(pem)}
    assert grpc_tls_kwargs(ClientConfig(url="h:1")) == {}


def test_channel_args_set_message_limits_and_keepalive():
    args = dict(grpc_channel_args(ClientConfig(url="h:1", keepalive_time_s=300, keepalive_timeout_s=20)))
    assert args["grpc.max_send_message_length"] == args["grpc.max_receive_message_length"] == 256 * 1024 * 1024
    assert args["grpc.keepalive_time_ms"] == 300_000
    assert args["grpc.keepalive_timeout_ms"] == 20_000


def test_encode_accepts_path_bytes_array_and_pil(ham_jpeg, tmp_path):
    path = tmp_path / "lesion.jpg"
    path.write_bytes(ham_jpeg)
    assert encode_image(path).data == ham_jpeg and encode_image(path).size == (600, 450)
    assert encode_image(str(path)).size == (600, 450)
    assert encode_image(ham_jpeg).size == (600, 450)
    array = np.zeros((40, 50, 3), np.uint8)
    array[..., 0] = 200
    encoded = encode_image(array)
    assert encoded.data.startswith(b"\x89PNG") and encoded.size == (50, 40)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded.data))), array)
    assert encode_image(Image.new("L", (70, 60))).size == (70, 60)


def test_an_array_is_sent_as_a_fast_lossless_png_of_the_same_pixels(ham_jpeg):
    """PIL's default zlib level 6 took 91 ms a 600x450 picture in the SDK (performance audit 1); level 1 keeps every
    pixel and takes about a fifth of that."""
    from dermassist_client.images import PNG_COMPRESS_LEVEL

    picture = np.asarray(Image.open(io.BytesIO(ham_jpeg)).convert("RGB"))
    encoded = encode_image(picture)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded.data))), picture)  # lossless on a real photograph
    expected = io.BytesIO()
    Image.fromarray(picture).save(expected, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    assert encoded.data == expected.getvalue()


def test_a_pil_image_keeps_its_colour_profile_when_encoded():
    """A phone picture opened with PIL is sent with its Display P3 profile, so the service reads its colours."""
    from tests.support import icc

    buffer = io.BytesIO()
    Image.new("RGB", (60, 40), (200, 80, 60)).save(buffer, "JPEG", icc_profile=icc.display_p3())
    with Image.open(io.BytesIO(buffer.getvalue())) as phone:
        sent = Image.open(io.BytesIO(encode_image(phone).data))
    assert sent.info["icc_profile"] == icc.display_p3()
    assert "icc_profile" not in Image.open(io.BytesIO(encode_image(Image.new("RGB", (60, 40))).data)).info


def test_the_overlay_of_a_16_bit_greyscale_picture_shows_its_greys_not_white():
    result = build_result(_outputs(), 0, (600, 450), "dermassist", "1")
    grey16 = Image.fromarray(np.full((450, 600), 30000, np.uint16))  # mid grey at 16 bits (mode I;16)
    out = np.asarray(draw_overlay(grey16, result))
    assert tuple(out[10, 10]) == (117, 117, 117)  # 30000 >> 8, by hand; convert("RGB") made it 255


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
@pytest.mark.parametrize("orientation,size", [(1, (80, 60)), (3, (80, 60)), (6, (60, 80)), (8, (60, 80))])
def test_encoded_size_is_the_displayed_size(fmt, orientation, size):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (150, 100, 90)).save(buffer, fmt, exif=exif)
    assert encode_image(buffer.getvalue()).size == size


def test_a_pil_image_is_sent_as_displayed_turned_and_at_its_bit_depth():
    """A PIL photo opened from a phone JPEG keeps its EXIF orientation; a 16-bit scan keeps its 16 bits."""
    stored = np.zeros((60, 80, 3), np.uint8)
    stored[:10, :10] = 255  # the stored top-left corner is the displayed top-right corner under orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "PNG", exif=exif)
    with Image.open(io.BytesIO(buffer.getvalue())) as photo:
        encoded = encode_image(photo)
    sent = np.asarray(Image.open(io.BytesIO(encoded.data)))
    assert encoded.size == (60, 80) and sent.shape == (80, 60, 3)
    assert sent[:10, -10:].min() == 255 and sent[:10, :10].max() == 0

    ramp = (np.arange(40 * 50).reshape(40, 50) * 30).astype(np.uint16)  # up to 59,970: all but the first 9 over 255
    for scan in (Image.fromarray(ramp), Image.fromarray(ramp).convert("I")):
        back = Image.open(io.BytesIO(encode_image(scan).data))
        assert back.mode == "I;16" and np.array_equal(np.asarray(back), ramp)
    with pytest.raises(InvalidImageError, match=r"floating-point PIL image \(mode F\).*scale it to 8-bit RGB"):
        encode_image(Image.fromarray(np.zeros((8, 8), np.float32)))


def test_encode_rejects_non_images_locally(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    with pytest.raises(InvalidImageError, match=r"notes.jpg is not an image .* expected a JPEG, PNG, BMP or TIFF"):
        encode_image(text)
    truncated = tmp_path / "header_only.png"
    truncated.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InvalidImageError, match="header_only.png is a PNG file, but its header cannot be read"):
        encode_image(truncated)
    with pytest.raises(InvalidImageError, match="cannot read image file"):
        encode_image(tmp_path / "missing.png")
    webp = tmp_path / "phone.webp"
    Image.new("RGB", (64, 48), (120, 80, 60)).save(webp, "WEBP")
    with pytest.raises(InvalidImageError, match=r"phone.webp is a WebP file, which DermAssist does not accept; "
                                                r"expected a JPEG, PNG, BMP or TIFF file: convert it"):
        encode_image(webp)
    dicom = tmp_path / "photo.dcm"
    dicom.write_bytes(bytes(128) + b"DICM" + bytes(64))
    with pytest.raises(InvalidImageError, match=r"photo.dcm is a DICOM file, not an encoded image; analyse it with "
                                                r"`dermassist-client analyze`"):
        encode_image(dicom)
    with pytest.raises(InvalidImageError, match="HxWx3 uint8"):
        encode_image(np.zeros((10, 10), np.float32))


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit-vr", "implicit-vr"])
def test_a_dicom_data_set_without_its_part_10_header_is_named_with_the_fix(tmp_path, explicit: bool) -> None:
    """It was 'not an image (... first bytes 08 00 05 00 43 53 0a 00)'."""
    import pydicom

    ds = pydicom.Dataset()
    ds.SpecificCharacterSet, ds.SOPInstanceUID, ds.PatientName = "ISO_IR 100", "1.2.3", "Doe^Jane"
    bare = tmp_path / "export.dcm"
    ds.save_as(bare, implicit_vr=not explicit, little_endian=True)  # no preamble, no 'DICM', no file meta
    assert bare.read_bytes()[:4] == bytes.fromhex("08000500")
    with pytest.raises(InvalidImageError, match=r"export.dcm looks like a DICOM data set written without its Part 10 "
                                                r"header .* if its pixel data is uncompressed, convert it with "
                                                r"`dcmconv \+F .*export.dcm fixed.dcm`"):
        encode_image(bare)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes.fromhex("08000500") + b"\xff" * 60)  # group 0008, then neither a VR nor a short length
    with pytest.raises(InvalidImageError, match="noise.bin is not an image"):
        encode_image(noise)


@pytest.mark.parametrize(("array", "fix"), [
    (np.zeros((10, 10, 3), np.float32), r"\(arr \* 255\).round\(\).astype\(np.uint8\)"),  # astype alone: black
    (np.zeros((10, 10), np.uint8), r"np.dstack\(\[arr\] \* 3\)"),
    (np.zeros((10, 10, 1), np.uint8), r"np.dstack\(\[arr\] \* 3\)"),
    (np.zeros((10, 10, 3), np.uint16), r"\(arr >> 8\).astype\(np.uint8\)"),
    (np.zeros((3, 10, 10), np.uint8), "channels last"),
])
def test_an_array_that_is_no_8_bit_rgb_picture_is_told_the_conversion_it_needs(array, fix):
    with pytest.raises(InvalidImageError, match=fix):
        encode_image(array)
    with pytest.raises(InvalidImageError, match="got int"):
        encode_image(42)


def _outputs(n: int = 1) -> dict[str, np.ndarray]:
    """n rows that differ (row r: class r % 8 most likely, its box shifted r pixels), so a mixed-up row shows."""
    probs = np.full((n, 8), 0.05, np.float32)
    probs[:, 3] = 0.65
    for r in range(1, n):
        probs[r] = np.full(8, 0.05, np.float32)
        probs[r, (3 + r) % 8] = 0.65
    mask = np.zeros((n, 256, 256), np.uint8)
    mask[:, 64:128, 128:192] = 255
    bbox = np.array([[300 + r, 112, 450 + r, 225] for r in range(n)], np.int32)
    return {"PROBABILITIES": probs, "MASK": mask, "BBOX": bbox,
            "LESION_FRACTION": np.array([[0.0625]] * n, np.float32)}


def test_result_is_frozen_read_only_and_resizes_its_mask():
    result = build_result(_outputs(), 0, (600, 450), "dermassist", "1")
    assert result.top_class.code == "MEL" and result.top_class.name == "Melanoma"
    assert list(result.probabilities) == [c.code for c in CLASSES]
    assert result.lesion_found and result.bbox.width == 150 and result.bbox.height == 113
    with pytest.raises(FrozenInstanceError):
        result.lesion_fraction = 0.0
    with pytest.raises(TypeError):
        result.probabilities["MEL"] = 1.0
    with pytest.raises(ValueError):
        result.mask[0, 0] = 1
    big = result.mask_at_original_size()
    assert big.shape == (450, 600) and set(np.unique(big)) == {0, 255}
    assert big[int(96 / 256 * 450), int(160 / 256 * 600)] == 255 and big[10, 10] == 0
    assert result.to_dict()["label"] == "MEL" and result.to_dict()["bbox"] == [300, 112, 450, 225]
    no_lesion = replace(result, lesion_fraction=0.0, original_size=None)
    assert not no_lesion.lesion_found
    with pytest.raises(ResultError, match="original image size is unknown"):
        no_lesion.mask_at_original_size()


def test_label_is_the_diagnosis_and_none_when_no_diagnosis_is_given_as_in_the_json():
    """``label`` names a class only when the answer stands as a diagnosis; ``top_class`` always names the most
    probable one (a caller reading ``label`` never gets a diagnosis for a picture that could not be assessed)."""
    outputs = {**_outputs(), "ASSESSABLE": np.array([[True]]), "REFER": np.array([[True]]),
               "REFER_SCORE": np.array([[0.9]], np.float32)}
    given = build_result(outputs, 0, (600, 450), "dermassist", "1")
    assert given.diagnosis_given and given.label is given.top_class and given.label.code == "MEL"
    not_assessable = replace(given, assessable=False)
    no_lesion = replace(given, lesion_fraction=0.0)
    for answer in (not_assessable, no_lesion):
        assert answer.label is None and answer.top_class.code == "MEL"
        assert answer.to_dict()["label"] is None and answer.to_dict()["top_class"] == "MEL"
    older_server = replace(given, assessable=None)  # a server without triage outputs: the class stands
    assert older_server.label is not None and older_server.label.code == "MEL"


def test_overlay_tints_the_mask_and_draws_the_box():
    result = build_result(_outputs(), 0, (600, 450), "dermassist", "1")
    image = Image.new("RGB", (600, 450), (200, 200, 200))
    out = np.asarray(draw_overlay(image, result))
    assert out.shape == (450, 600, 3)
    assert tuple(out[10, 10]) == (200, 200, 200)
    inside = out[int(96 / 256 * 450), int(160 / 256 * 600)]
    assert inside[0] > 200 and inside[1] < 150
    x0, y0 = result.bbox.x_min, result.bbox.y_min  # the box's top left corner (the picture is not scaled)
    middle = (x0 + result.bbox.x_max) // 2
    assert tuple(out[y0, middle]) == OUTLINE_OUTER and tuple(out[y0 + 100, x0]) == OUTLINE_OUTER
    assert OUTLINE_INNER in [tuple(v) for v in out[y0:y0 + 8, middle]]  # the white line inside the black one


@pytest.mark.parametrize("skin", [(233, 190, 170), (92, 60, 45), (150, 110, 90)], ids=["light", "dark", "brown"])
def test_the_box_and_the_mask_edge_stand_out_at_3_to_1_from_any_skin(skin):
    """A green box had measured 1.0-1.4:1 against the skin beside it and the red tint's edge 1.3-1.6:1 (accessibility
    audit, M3): a black line with a white one inside it gives one of them 3:1 or more on any skin."""
    from dermassist_client.overlay import mask_edges

    def luminance(rgb):
        c = np.asarray(rgb, float) / 255
        c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    def contrast(a, b):
        hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    from dataclasses import replace

    square = build_result(_outputs(), 0, (600, 450), "dermassist", "1")
    yy, xx = np.mgrid[:256, :256]
    disc = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 60 ** 2, 255, 0).astype(square.mask.dtype)  # a round lesion
    result = replace(square, mask=disc)
    out = np.asarray(draw_overlay(Image.new("RGB", (600, 450), skin), result))
    assert max(contrast(OUTLINE_OUTER, skin), contrast(OUTLINE_INNER, skin)) >= 3.0
    mask = np.asarray(Image.fromarray(result.mask).resize((600, 450), Image.NEAREST)) > 0
    inner, outer = mask_edges(mask, 2)
    assert inner.any() and outer.any() and not (inner & outer).any() and not (outer & mask).any()
    away = np.ones_like(mask)  # away from the box drawn over them
    b = result.bbox
    away[max(0, b.y_min - 8):b.y_max + 8, max(0, b.x_min - 8):b.x_min + 8] = False
    away[max(0, b.y_min - 8):b.y_max + 8, max(0, b.x_max - 8):b.x_max + 8] = False
    away[max(0, b.y_min - 8):b.y_min + 8, max(0, b.x_min - 8):b.x_max + 8] = False
    away[max(0, b.y_max - 8):b.y_max + 8, max(0, b.x_min - 8):b.x_max + 8] = False
    assert (outer & away).any() and {tuple(v) for v in out[outer & away]} == {OUTLINE_OUTER}
    assert {tuple(v) for v in out[mask_edges(mask, 1)[0] & away]} == {OUTLINE_INNER}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_overlay_of_a_picture_stored_sideways_is_drawn_on_it_as_displayed(fmt):
    """A phone stores a portrait photo sideways with EXIF orientation 6; the server's mask is in the turned frame."""
    stored = np.full((450, 600, 3), 200, np.uint8)  # 600 wide, 450 high as stored
    stored[:40, :40] = (0, 0, 255)  # blue in the stored top-left corner: the displayed top-right corner
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, fmt, exif=exif, **({"quality": 100} if fmt == "JPEG" else {}))
    result = build_result(_outputs(), 0, (450, 600), "dermassist", "1")  # the displayed size, as the server says
    with Image.open(io.BytesIO(buffer.getvalue())) as photo:
        out = np.asarray(draw_overlay(photo, result))
    assert out.shape == (600, 450, 3)
    assert out[10, 440, 2] > 200 and out[10, 440, 0] < 60  # the blue corner where the viewer shows it
    expected = (result.mask_at_original_size() > 0)
    tinted = (out[..., 0].astype(int) - out[..., 2].astype(int)) > 40
    assert (tinted == expected)[5:-5, 5:-5].mean() > 0.99  # the mask lies where the server put it


def test_overlay_shows_a_display_p3_picture_in_its_srgb_colours():
    """The overlay the page shows carries no profile, so a phone's Display P3 pixels are converted for it."""
    from tests.support import icc

    srgb = np.array([[[190, 90, 70], [90, 150, 100], [100, 110, 190], [128, 128, 128]]], np.uint8).repeat(40, 0)
    image = Image.fromarray(icc.srgb_to_display_p3(srgb.repeat(150, 1)))
    image.info["icc_profile"] = icc.display_p3()
    no_lesion = replace(build_result(_outputs(), 0, (600, 40), "dermassist", "1"), lesion_fraction=0.0)
    shown = np.asarray(draw_overlay(image, no_lesion))[0, ::150]  # the top row is outside the mask
    assert np.abs(shown.astype(int) - srgb[0]).max() <= 2
    assert np.abs(np.asarray(image)[0, ::150].astype(int) - srgb[0]).max() >= 10  # unconverted it would be duller
    image.info["icc_profile"] = b"not a profile"
    untagged = Image.fromarray(np.asarray(image))
    assert np.array_equal(np.asarray(draw_overlay(image, no_lesion)), np.asarray(draw_overlay(untagged, no_lesion)))


def test_batches_split_at_max_batch_size_and_max_bytes():
    images = [EncodedImage(b"x", None, f"img{i}") for i in range(70)]
    parts = list(chunks(images, 32))
    assert [(offset, len(part)) for offset, part in parts] == [(0, 32), (32, 32), (64, 6)]
    sized = [EncodedImage(b"x" * n, None, f"img{i}") for i, n in enumerate([30, 30, 50, 200, 10])]
    by_bytes = list(chunks(sized, 32, max_bytes=100, nbytes=lambda image: len(image.data)))
    # 30+30 fit, +50 would pass 100; 200 alone is over it but goes alone (the message limit then names it)
    assert [(offset, len(part)) for offset, part in by_bytes] == [(0, 2), (2, 1), (3, 1), (4, 1)]


class _Transport:
    """Answers every request like the ensemble, refusing the whole request when it holds a b"bad" image."""

    def __init__(self) -> None:
        self.requests: list[int] = []

    def infer(self, data, with_crop, timeout_s, request_id):
        self.requests.append(len(data))
        if b"bad" in data:
            raise InvalidImageError("analyzing: the server rejected the image: bad",
                                    server_message=f"IMAGE row {data.index(b'bad')}")
        return RawAnswer(_outputs(len(data)), "dermassist", "1", request_id)

    async def ainfer(self, data, with_crop, timeout_s, request_id):
        return self.infer(data, with_crop, timeout_s, request_id)


def _fake_png() -> bytes:
    return encode_image(Image.new("RGB", (600, 450), (150, 100, 90))).data


def test_one_refused_image_does_not_cost_the_others_their_answers(tmp_path):
    client = DermAssistClient("127.0.0.1:1", retries=0, max_batch_size=4)
    client._transport = fake = _Transport()
    good, missing = _fake_png(), tmp_path / "missing.png"
    with pytest.raises(PartialBatchError) as info:
        client.analyze_batch([good, b"bad", good, missing, good, good])
    message = str(info.value)
    assert message.startswith("2 of 6 images were refused (image 1 (<3 bytes>): analyzing: the server rejected")
    assert "image 3: cannot read image file" in message and "the other 4 were answered" in message
    kinds = [type(r).__name__ for r in info.value.results]
    assert kinds == ["LesionResult", "InvalidImageError", "LesionResult", "InvalidImageError", "LesionResult", "LesionResult"]
    assert fake.requests == [4, 1, 1, 1, 1, 1]  # the refused request of 4 again one by one, then the fifth image
    assert isinstance(info.value, InvalidImageError)  # callers that caught InvalidImageError still do
    assert len(client.analyze_batch([good] * 5)) == 5 and fake.requests[-2:] == [4, 1]

    aclient = AsyncDermAssistClient("127.0.0.1:1", retries=0, max_batch_size=4)
    aclient._transport = SimpleNamespace(infer=_Transport().ainfer)
    with pytest.raises(PartialBatchError) as ainfo:
        asyncio.run(aclient.analyze_batch([good, b"bad", good, missing, good, good]))
    assert [type(r).__name__ for r in ainfo.value.results] == kinds


def test_an_answer_with_the_wrong_row_count_is_a_server_error_not_a_bad_image():
    images = [EncodedImage(b"x", (600, 450), f"img{i}") for i in range(3)]
    assert len(results_of(RawAnswer(_outputs(3), "dermassist", "1"), images)) == 3
    with pytest.raises(ServerError, match="'dermassist' answered 2 rows for 3 images"):
        results_of(RawAnswer(_outputs(2), "dermassist", "1"), images)


def test_each_result_reads_its_own_row_of_the_answer():
    images = [EncodedImage(b"x", (600, 450), f"img{i}") for i in range(3)]
    results = results_of(RawAnswer(_outputs(3), "dermassist", "1"), images)
    assert [r.top_class.code for r in results] == ["MEL", "NV", "BKL"]
    assert [r.bbox.as_tuple()[0] for r in results] == [300, 301, 302]


def test_requests_are_cut_at_the_batch_size_and_the_message_budget_and_skip_refused_images():
    big = EncodedImage(b"x" * 10_000_000, (600, 450), "big")
    small = EncodedImage(b"x" * 1000, (600, 450), "small")
    refused = InvalidImageError("image 2: not an image")
    outcomes = [big, big, refused, big, small, small, small]
    budget = 25_000_000 + MESSAGE_OVERHEAD_BYTES  # two big images and change per request
    parts = request_parts(outcomes, max_batch_size=3, max_message_bytes=budget)
    assert [[i for i, _ in part] for part in parts] == [[0, 1], [3, 4, 5], [6]]
    assert all(sum(len(e.data) for _, e in part) <= budget - MESSAGE_OVERHEAD_BYTES for part in parts)
    huge = EncodedImage(b"x" * 30_000_000, (600, 450), "huge")  # over the budget alone: sent alone, named by the limit
    assert [[i for i, _ in part] for part in request_parts([huge, small], 32, budget)] == [[0], [1]]


def test_results_carry_the_request_id_the_answer_echoes():
    images = [EncodedImage(b"x", (600, 450), f"img{i}") for i in range(2)]
    results = results_of(RawAnswer(_outputs(2), "dermassist", "1", "req-42"), images)
    assert [r.request_id for r in results] == ["req-42", "req-42"]
    assert results[0].to_dict()["request_id"] == "req-42"
    assert new_request_id() != new_request_id() and len(new_request_id()) == 32


@pytest.mark.parametrize(("status", "message", "expected"), [
    ("StatusCode.INTERNAL", "in ensemble 'dermassist', Stub process 'lesion_crop_0_0' is not healthy.",
     ServerUnavailableError),
    ("StatusCode.UNAVAILABLE", "DermAssist is not ready (recovering); retry later", ServerUnavailableError),
    ("StatusCode.INTERNAL", "something else broke", ServerError),
    ("StatusCode.CANCELLED", "CANCELLED", ServerUnavailableError),  # a server that began stopping dropped it
    ("StatusCode.INVALID_ARGUMENT", "IMAGE row 0: not an image", InvalidImageError),
    # a server older than the SDK (no triage outputs): not every picture "rejected" (upgrade audit, M3)
    ("StatusCode.INVALID_ARGUMENT", "unexpected inference output 'ASSESSABLE' for model 'dermassist'", ServerError),
    ("StatusCode.INVALID_ARGUMENT", "model 'dermassist' has no output 'REFER'; expected output names from ...", ServerError),
    ("StatusCode.RESOURCE_EXHAUSTED", "Received message larger than max (3000000 vs. 1048576)", RequestTooLargeError),
    # another gRPC service at the address (or a proxy answering 404): the run stops there, exit 3 (fuzz audit 12.2)
    ("StatusCode.UNIMPLEMENTED", "Method not found!", ConnectionSetupError),
])
def test_a_failed_step_is_retryable_like_unavailability(status, message, expected):
    error = translate(InferenceServerException(message, status=status), "analyzing", "h:1", inference=True)
    assert type(error) is expected
    if status == "StatusCode.RESOURCE_EXHAUSTED":
        assert "larger than the gRPC message limit" in str(error) and "send fewer images per call" in str(error)
    if expected is ServerError and "output" in message:
        assert "predates the SDK's contract" in str(error) and "upgrade the server" in str(error)


def test_a_request_the_server_refuses_for_taking_its_pipeline_down_is_not_called_too_large_for_grpc():
    """The guard refuses a request that was being answered at each of two failures (failure audit 5): it is not
    retried, and its words are the server's own."""
    words = ("this request (32 picture(s), 184.0 MB) was being answered each time the pipeline failed (2 times): it "
             "is not run again for 10 more minute(s), so as not to take the service down for every client; send fewer "
             "or smaller pictures per call, or check the pictures")
    error = translate(InferenceServerException(words, status="StatusCode.RESOURCE_EXHAUSTED"), "analyzing 32 image(s)",
                      "h:1", inference=True)
    assert type(error) is RequestTooLargeError and str(error) == f"analyzing 32 image(s): the server refused it: {words}"
    assert "message limit" not in str(error)


def test_a_connection_closed_by_a_stopping_server_under_a_call_is_retryable_and_not_called_a_set_up_fault():
    """gRPC's words when a stopping server closed the connection before its answer was read (a CI run): no TLS hint."""
    message = ("Stream removed (recvmsg:Connection reset by peer (104) (GOAWAY received; Error code: 0; "
               "Debug Text: Server shutdown))")
    hint = tls_hint(ssl=False, client_certificate=False)
    error = translate(InferenceServerException(message, status="StatusCode.UNAVAILABLE"), "analyzing", "h:1",
                      inference=True, hint=hint)
    assert type(error) is ServerUnavailableError
    assert "closed the connection as it stopped, before the answer was read" in str(error)
    assert "retried like unavailability" in str(error) and hint not in str(error)
    refused = translate(InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE"),
                        "analyzing", "h:1", inference=True, hint=hint)
    assert hint in str(refused) and "as it stopped" not in str(refused)


def test_calling_the_guards_health_port_or_a_grpc_port_over_http_says_which_port_to_call():
    import json

    from dermassist.guard.health import Readiness, health_answer

    body = health_answer("POST", "/v2/models/dermassist/infer", Readiness()).split(b"\r\n\r\n", 1)[1]
    guard_says = json.loads(body)["error"]
    error = translate(InferenceServerException(guard_says, status="404"), "analyzing", "h:8000", inference=True)
    assert type(error) is ConnectionSetupError  # a wrong port: raised at once, and the CLI stops with exit 3
    assert "h:8000 is DermAssist's health port, which serves no inference" in str(error)
    assert "call its gRPC port (8001 by default) with protocol grpc" in str(error)

    class HTTPParseError(Exception):
        pass

    error = translate(HTTPParseError("('Expected HTTP/, RTSP/ or ICE/', 8)"), "analyzing", "h:8001")
    assert type(error) is ConnectionSetupError
    assert "h:8001 did not answer in HTTP" in str(error) and "use protocol grpc" in str(error)


def test_an_asyncio_client_used_after_its_loop_closed_is_a_usage_error_not_a_server_error():
    error = translate(RuntimeError("Event loop is closed"), "analyzing", "h:8001")
    assert isinstance(error, ClientConfigError) and "create the client inside the loop that uses it" in str(error)


def test_retries_back_off_exponentially_only_while_unavailable(caplog, monkeypatch):
    config = ClientConfig(url="h:1", retries=3, backoff_initial_s=0.05, backoff_max_s=0.15, timeout_s=5)
    assert [backoff_s(config, a) for a in range(4)] == [0.05, 0.1, 0.15, 0.15]
    clock = SimpleNamespace(now=100.0, sleeps=[])

    def sleep(seconds):  # the retry loop's sleeps, recorded and taken on the test's clock
        clock.sleeps.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(retry_module, "time", SimpleNamespace(monotonic=lambda: clock.now, sleep=sleep))
    calls = []

    def unavailable(timeout_s):
        calls.append(timeout_s)
        raise ServerUnavailableError("down")

    with caplog.at_level(logging.WARNING, logger="dermassist_client.retry"), pytest.raises(ServerUnavailableError):
        call_with_retries(config, unavailable)
    assert clock.sleeps == [0.05, 0.1, 0.15]  # backed off before each of the 3 retries, none after the last attempt
    assert calls == pytest.approx([5, 5 - 0.05, 5 - 0.15, 5 - 0.3])  # each attempt got what was left of timeout_s
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 3

    other = []

    def invalid(timeout_s):
        other.append(timeout_s)
        raise InvalidImageError("bad")

    with pytest.raises(InvalidImageError):
        call_with_retries(config, invalid)
    assert len(other) == 1



def test_a_refusals_reason_is_the_servers_own_words_or_the_local_message():
    served = InvalidImageError("image 3 (a.jpg): analyzing 1 image(s) (request 8f): the server rejected the image: ...",
                               server_message="in ensemble 'dermassist', prepare: IMAGE row 0: the file is truncated")
    assert served.reason == "the file is truncated"
    local = InvalidImageError("image 2: /x/notes.jpg is not an image (12 bytes)")
    assert local.reason == "/x/notes.jpg is not an image (12 bytes)"


def test_a_phones_multi_picture_jpeg_is_sent_as_displayed():
    """Phones save JPEGs with a second picture (PIL names the format "MPO"); their orientation turns them too."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (150, 100, 90)).save(buffer, "MPO", save_all=True,
                                                    append_images=[Image.new("RGB", (40, 30))], exif=exif)
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    assert encode_image(buffer.getvalue()).size == (60, 80)


def test_a_png_orientation_in_a_text_chunk_is_not_applied_as_the_server_does_not():
    from tests.support.images import raw_profile_png

    data = raw_profile_png(np.zeros((60, 80, 3), np.uint8), 6)
    assert encode_image(data).size == (80, 60)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import zlib

    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def test_a_png_header_is_read_without_decoding_its_pixels_and_a_late_exif_chunk_still_turns_it():
    from dermassist_client.images import png_has_exif, read_header

    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (150, 100, 90)).save(buffer, "PNG")
    png = buffer.getvalue()
    idat = png.index(b"IDAT") - 4
    length = int.from_bytes(png[idat:idat + 4], "big")
    broken_pixels = png[:idat] + _png_chunk(b"IDAT", bytes(length)) + png[idat + 12 + length:]  # not zlib data
    assert read_header(broken_pixels) == ("PNG", (80, 60))  # the size is in IHDR: no pixel needs decoding
    exif = Image.Exif()
    exif[0x0112] = 6
    late = png[:-12] + _png_chunk(b"eXIf", exif.tobytes()) + png[-12:]  # eXIf after the pixels, before IEND
    assert png_has_exif(late) and not png_has_exif(png)
    assert read_header(late) == ("PNG", (60, 80))


def test_a_picture_of_too_many_pixels_is_called_that_not_not_an_image(tmp_path):
    """A 200-megapixel phone JPEG: PIL refuses its header as a possible decompression bomb; the user is told its
    size and to downscale it, not that it is no image."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")  # start of frame: height then width, two bytes each, after length and precision
    data[sof + 5:sof + 9] = (12240).to_bytes(2, "big") + (16320).to_bytes(2, "big")
    big = tmp_path / "phone200mp.jpg"
    big.write_bytes(bytes(data))
    with pytest.raises(InvalidImageError, match=r"phone200mp.jpg is a JPEG file, but it declares 199.8 megapixels"):
        encode_image(big)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(InvalidImageError, match="broken.png is a PNG file, but its header cannot be read"):
        encode_image(broken)


def _jpeg_declaring(tmp_path, width: int, height: int):
    """A small JPEG whose frame header (SOF0) declares ``width`` x ``height``: PIL reads the size, no pixel."""
    import struct

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 80, 60)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path = tmp_path / f"declares_{width}x{height}.jpg"
    path.write_bytes(bytes(data))
    return path


def test_a_picture_over_the_servers_pixel_limit_is_refused_here_without_pils_bomb_warning(tmp_path):
    """A 144-megapixel JPEG printed PIL's 'could be decompression bomb DOS attack' warning, was sent, and the server
    refused it at 50 megapixels; 195 megapixels were refused here, in other words."""
    import warnings

    big = _jpeg_declaring(tmp_path, 12000, 12000)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InvalidImageError, match=r"12000x12000 = 144,000,000 pixels \(144.0 megapixels\); at most "
                                                     r"50,000,000 pixels \(50 megapixels\) are accepted: downscale"):
            encode_image(big)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert encode_image(_jpeg_declaring(tmp_path, 7000, 7000)).size == (7000, 7000)  # 49 megapixels: sent
    before = list(warnings.filters)
    with pytest.raises(InvalidImageError):
        encode_image(big)
    assert warnings.filters == before  # the process's filters are left as they were


def test_an_empty_file_is_told_it_is_empty(tmp_path):
    """It was 'is not an image (0 bytes, first bytes nothing)'."""
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=rf"^{empty} is empty \(0 bytes\); expected a JPEG, PNG, BMP or TIFF file$"):
        encode_image(empty)


def test_a_refused_client_setting_names_the_command_lines_flag(tmp_path, capsys) -> None:
    """``analyze --timeout -1`` said "timeout_s must be ...": the user typed --timeout."""
    import argparse

    from dermassist_client.cli import SETTING_FLAGS, build_parser, main

    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["analyze", str(image), "--timeout", "-1"]) == 2
    err = capsys.readouterr().err
    assert "timeout_s must be a positive number of seconds" in err and err.rstrip().endswith("(the command line's --timeout)")
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = {o for a in commands.choices["analyze"]._actions for o in a.option_strings}
    assert set(SETTING_FLAGS.values()) <= options  # every flag named is one analyze has


def test_the_throughput_benchmark_script_starts_and_explains_itself() -> None:
    """client/benchmarks/throughput.py had no test at all."""
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "client" / "benchmarks" / "throughput.py"), "--help"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage:") and "--url" in run.stdout


def test_a_folder_given_as_an_image_is_told_to_be_expanded(tmp_path) -> None:
    """`analyze "2026-11 ward B"` answered "cannot read image file ...: Is a directory; check the path"."""
    from dermassist_client.errors import InvalidImageError
    from dermassist_client.images import encode_image

    folder = tmp_path / "ward B"
    folder.mkdir()
    with pytest.raises(InvalidImageError, match=r"ward B is a folder, not an image file; pass its images \(e.g. "):
        encode_image(folder)


def test_a_path_that_is_no_regular_file_or_too_large_is_refused_before_it_is_read(tmp_path, monkeypatch) -> None:
    """/dev/zero was read until the kernel killed the process (a global OOM) and a named pipe hung (fuzz audit 2)."""
    import os

    import dermassist_client.images as images

    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    with pytest.raises(InvalidImageError, match=r"camera.jpg is a named pipe \(FIFO\), not an image file"):
        encode_image(fifo)  # no writer: opening it would block
    from dermassist_client.interop import is_dicom_path

    assert not is_dicom_path(fifo)  # the CLI's first look at a path: it opened the pipe and hung
    with pytest.raises(InvalidImageError, match=r"/dev/zero is a character device, not an image file"):
        encode_image("/dev/zero")
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(4097)  # sparse: nothing is written
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 4096)
    with pytest.raises(InvalidImageError, match=r"big.jpg is 4,097 bytes; no image DermAssist accepts is over 4,096 bytes"):
        encode_image(big)


def test_an_empty_array_or_picture_and_a_path_with_a_nul_are_the_sdks_own_errors() -> None:
    """They raised Pillow's SystemError and Python's ValueError, which a caller catching the SDK's errors missed
    (fuzz audit 12.1)."""
    from PIL import Image

    for empty, shown in ((np.zeros((0, 0, 3), np.uint8), "<array 0x0> is 0x0 pixels"),
                         (np.zeros((0, 5, 3), np.uint8), "<array 5x0> is 5x0 pixels"),
                         (Image.new("RGB", (0, 0)), "<PIL image> is 0x0 pixels")):
        with pytest.raises(InvalidImageError, match=re.escape(shown) + ": an empty picture"):
            encode_image(empty)
    for path in ("lesion\x00.jpg", Path("ward") / "lesion\x00.jpg"):  # bytes are a picture's bytes, not a path
        with pytest.raises(InvalidImageError, match="holds a NUL character"):
            encode_image(path)


def test_a_tls_file_that_is_a_folder_or_a_device_is_named_as_such(tmp_path) -> None:
    """A folder, /dev/null and a pipe were all said to 'not exist' (fuzz audit 12.3)."""
    import os

    os.mkfifo(tmp_path / "ca_pipe.pem")
    for given, words in ((tmp_path, "is a folder"), (Path("/dev/null"), "is a character device"),
                         (tmp_path / "ca_pipe.pem", "is a named pipe (FIFO)"), (tmp_path / "ca.pem", "does not exist")):
        with pytest.raises(ClientConfigError, match=re.escape(f"root_certificates file {given} {words}; pass the path")):
            ClientConfig(url="h:1", ssl=True, root_certificates=given)
