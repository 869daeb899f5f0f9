"""Image reading: header dimensions, the pixel budget (refused before decoding)."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest

from fermtl_tf.data.image_io import InputProblem, header_dimensions, read_image


def _png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png_header_only(width, height):
    """A PNG whose header announces width x height but holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"")
            + _png_chunk(b"IEND", b""))


def _jpeg_with_app_segment(width, height):
    """A real JPEG with a 5000-byte APP1 (EXIF-like) segment before its frame header."""
    ok, buffer = cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))
    data = buffer.tobytes()
    app1 = b"\xff\xe1" + struct.pack(">H", 5002) + bytes(5000)
    return data[:2] + app1 + data[2:]


@pytest.mark.parametrize("encode, shape", [
    (lambda: cv2.imencode(".png", np.zeros((37, 51, 3), np.uint8))[1].tobytes(), (37, 51)),
    (lambda: _jpeg_with_app_segment(51, 37), (37, 51)),
    (lambda: cv2.imencode(".bmp", np.zeros((37, 51, 3), np.uint8))[1].tobytes(), None),
])
def test_header_dimensions_match_the_decoded_image(encode, shape):
    data = encode()
    found = header_dimensions(io.BytesIO(data))
    if shape is None:
        assert found is None  # not PNG/JPEG: the budget is checked after decoding
    else:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape[:2] == shape and found == (shape[1], shape[0])


def test_an_image_above_the_budget_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(20000, 20000))  # 400 MP announced, no pixels
    with pytest.raises(InputProblem, match=r"image is 20000x20000 = 400\.0 MP, above the "
                                           r"pixel budget --max-pixels 150000000"):
        read_image(str(path), max_pixels=150_000_000)
    with pytest.raises(InputProblem, match="cannot decode"):  # it was never decodable
        read_image(str(path), max_pixels=0)


def test_the_budget_applies_after_decoding_to_other_formats(tmp_path):
    path = tmp_path / "a.bmp"
    cv2.imwrite(str(path), np.zeros((40, 50, 3), np.uint8))
    assert read_image(str(path), max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(InputProblem, match=r"image is 50x40 = 0\.0 MP"):
        read_image(str(path), max_pixels=1999)
