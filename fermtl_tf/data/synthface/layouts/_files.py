"""File helpers every native-layout writer uses: writing a rendered image, planting damage."""

import os

import cv2


def write_image(path, rgb, grey=False):
    """PNG or JPEG (quality 95) by the file extension; ``grey`` stores one channel (CK+)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY if grey else cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith((".jpg", ".jpeg")) else []
    if not cv2.imwrite(path, pixels, params):
        raise OSError(f"cannot write {path}")


def truncate(path):
    """Cut a file to half its length: the planted truncated image an importer must skip."""
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
