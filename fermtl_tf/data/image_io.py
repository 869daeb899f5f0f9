"""Reading input images safely and within a pixel budget, and encoding crops.

Every problem with one image becomes an :class:`InputProblem`, the input's ``skipped``
reason in the manifest: a missing, unreadable or non-regular file (a FIFO is refused
without being opened), an empty, truncated or undecodable one, a JPEG that libjpeg
reports as corrupt, and an image above the pixel budget. The budget is checked on the
dimensions in the file's header (PNG, JPEG) before the pixels are decoded, so a
12000 x 12000 photo cannot take the machine's memory with it (issue 13 item 3).
"""

import os
import stat
import struct
import sys
import tempfile
import threading

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (baseline, progressive, lossless, ... not DHT/JPG/DAC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}

#: Serialises the stderr redirection of :func:`_decode_jpeg_checked` between threads.
_STDERR_CAPTURE = threading.Lock()


class InputProblem(Exception):
    """Why one input cannot be written; becomes its ``skipped`` reason."""


def _looks_truncated(data):
    if data[:2] == b"\xff\xd8":
        return not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if data[:8] == PNG_SIGNATURE:
        return b"IEND" not in data[-64:]
    return False


def _png_dimensions(handle):
    head = handle.read(24)
    if head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_dimensions(handle):
    """(width, height) from the first SOF segment, walking the markers with seeks."""
    if handle.read(2) != b"\xff\xd8":
        return None
    while True:
        if handle.read(1) != b"\xff":
            return None
        marker = handle.read(1)
        while marker == b"\xff":  # fill bytes before a marker
            marker = handle.read(1)
        if not marker or marker[0] in (0xD8, 0xD9, 0xDA):  # no SOF before the scan
            return None
        if 0xD0 <= marker[0] <= 0xD7 or marker[0] == 0x01:  # no length field
            continue
        length = handle.read(2)
        if len(length) < 2:
            return None
        size = struct.unpack(">H", length)[0]
        if marker[0] in _JPEG_SOF:
            segment = handle.read(5)
            if len(segment) < 5:
                return None
            height, width = struct.unpack(">HH", segment[1:5])
            return width, height
        handle.seek(size - 2, os.SEEK_CUR)


def header_dimensions(handle):
    """(width, height) read from a PNG or JPEG header, or None (other formats, damage).

    Reads only the header (seeking over JPEG segments such as EXIF thumbnails); the
    handle is left at the start of the file.
    """
    try:
        for reader in (_png_dimensions, _jpeg_dimensions):
            handle.seek(0)
            found = reader(handle)
            if found is not None:
                return found
        return None
    finally:
        handle.seek(0)


def _over_budget(width, height, max_pixels, path):
    """An InputProblem when ``width x height`` exceeds ``max_pixels`` (0: no budget)."""
    if max_pixels and width * height > max_pixels:
        return InputProblem(
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP, above the pixel "
            f"budget --max-pixels {max_pixels} ({max_pixels / 1e6:.1f} MP); not decoded: "
            f"downscale it or raise --max-pixels: {path}")
    return None


def _read_regular_file(path, max_pixels=0):
    """The bytes of ``path``; InputProblem for a missing, unreadable or non-regular file,
    or one whose header announces more than ``max_pixels`` pixels.

    A FIFO, socket or device is refused from ``stat`` before it is opened: opening a
    FIFO would wait for a writer forever.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise InputProblem(f"not a regular file (a FIFO, socket, device or folder): {path}")
        with open(path, "rb") as handle:
            dimensions = header_dimensions(handle)
            problem = dimensions and _over_budget(*dimensions, max_pixels, path)
            if problem:
                raise problem
            return handle.read()
    except FileNotFoundError:
        raise InputProblem(f"image file not found: {path}") from None
    except OSError as error:
        raise InputProblem(f"cannot read image file {path}: {error.strerror}") from None


def _decode_jpeg_checked(data, flags, path):
    """``cv2.imdecode`` of JPEG bytes, refusing data that libjpeg reports as corrupt.

    libjpeg decodes damaged entropy-coded data anyway (grey or smeared blocks) and only
    prints "Corrupt JPEG data: ..." on the process's stderr. That stream (file
    descriptor 2) is redirected to a temporary file for the call, so the warning
    becomes this input's skip reason instead of a line nobody links to an image.
    """
    with _STDERR_CAPTURE, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        printed = sink.read().decode("utf-8", "replace").strip()
    if printed:
        first = printed.splitlines()[0]
        raise InputProblem(f"corrupt JPEG data (libjpeg: {first}): {path}")
    return image


def read_image(path, max_pixels=0):
    """RGB uint8 pixels of an image file, as stored (EXIF orientation is not applied).

    Raises :class:`InputProblem` for a missing, unreadable, non-regular, empty,
    truncated (JPEG without end marker, PNG without IEND), corrupt (libjpeg warnings)
    or undecodable file, and for one of more than ``max_pixels`` pixels (0: no budget;
    PNG and JPEG are refused from their header, other formats after decoding).
    """
    data = _read_regular_file(path, max_pixels)
    if not data:
        raise InputProblem(f"image file is empty: {path}")
    if _looks_truncated(data):
        raise InputProblem(f"image file is truncated: {path}")
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    if data[:2] == b"\xff\xd8":
        image = _decode_jpeg_checked(data, flags, path)
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    del data  # the encoded bytes are not needed once decoded: free them before the copy
    if image is None:
        raise InputProblem(f"cannot decode image (corrupt or not an image): {path}")
    problem = _over_budget(image.shape[1], image.shape[0], max_pixels, path)
    if problem:
        raise problem
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def encode_image(rgb, image_format):
    """PNG or JPEG (quality 95) bytes of an RGB crop."""
    if image_format == "png":
        extension, params = ".png", []
    else:
        extension, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputProblem(f"cannot encode the crop as {image_format}")
    return buffer.tobytes()


