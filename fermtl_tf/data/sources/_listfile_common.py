"""Helpers shared by the list-file importers (RAF-DB, RAF-CE, AffectNet, CelebA, LSEMSW,
Multi-PIE): locating files, seeded hold-out splits, whole-image face boxes, fingerprints.

Every split drawn here is a function of the sorted keys and the seed only, so the same
list file and ``--split-seed`` always give the same split, whatever the file order.
"""

import csv
import hashlib
import os

import numpy as np

from fermtl_tf.data.sources.base import PrepError


def sha256(path):
    """SHA-256 of a (label) file, for the output folder's dataset fingerprint."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_root(root, source):
    """The root folder as a string; PrepError naming it when it is not a folder."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise PrepError(f"{source}: dataset root {root} is not a folder (see fermtl-prep "
                        f"{source} --help for the expected layout)")
    return root


def find_file(root, candidates, source, what):
    """The first existing ``root/<candidate>``; PrepError listing every path tried."""
    for relative in candidates:
        path = os.path.join(root, relative)
        if os.path.isfile(path):
            return path
    tried = ", ".join(os.path.join(root, c) for c in candidates)
    raise PrepError(f"{source}: no {what} found; looked for {tried}")


def find_folder(root, candidates):
    """The first existing ``root/<candidate>`` folder, or ``None``."""
    for relative in candidates:
        path = os.path.join(root, relative)
        if os.path.isdir(path):
            return path
    return None


def read_lines(path):
    """``[(line number, stripped text)]`` of the non-blank lines of a text file."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return [(n, line.strip()) for n, line in enumerate(handle, 1) if line.strip()]
    except OSError as error:
        raise PrepError(f"cannot read {path}: {error.strerror}") from None


def read_csv_rows(path):
    """``(header, [(line number, row dict)])`` of a CSV file with a header row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]
            header = [h.strip() for h in (reader.fieldnames or [])]
    except OSError as error:
        raise PrepError(f"cannot read {path}: {error.strerror}") from None
    except csv.Error as error:
        raise PrepError(f"{path}: cannot parse the CSV ({error})") from None
    rows = [(n, {(k or "").strip(): v for k, v in row.items()}) for n, row in rows]
    return header, rows


def holdout(keys, fraction, seed):
    """The keys held out: ``round(fraction * n)`` of the sorted unique keys, by seed.

    A random permutation of the sorted keys (numpy ``default_rng(seed)``) is cut at
    ``round(fraction * n)``; the order of ``keys`` does not matter.
    """
    ordered = sorted(set(keys))
    count = int(round(fraction * len(ordered)))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i] for i in order[:count]}


def parse_fractions(text, source):
    """``--split-fractions "0.8,0.1,0.1"`` as three floats summing to 1 (PrepError otherwise)."""
    try:
        fractions = [float(v) for v in text.split(",")]
    except ValueError:
        fractions = []
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise PrepError(f"{source}: --split-fractions must be three fractions summing to 1, "
                        f"got {text!r}")
    return fractions


def partition(keys, fractions, names, seed):
    """``{key: name}``: sorted unique keys permuted by seed, cut by ``fractions``.

    Counts are ``floor(f * n)`` with the remainder given to the largest fractions first
    (so 80/10/10 of 10 keys is exactly 8/1/1).
    """
    ordered = sorted(set(keys))
    n = len(ordered)
    counts = [int(np.floor(f * n)) for f in fractions]
    for i in sorted(range(len(fractions)), key=lambda i: -fractions[i]):
        if sum(counts) < n:
            counts[i] += 1
    order = np.random.default_rng(seed).permutation(n)
    labels = np.repeat(np.array(names), counts)
    return {ordered[i]: str(label) for i, label in zip(order, labels, strict=True)}


def image_size(path):
    """``(width, height)`` read from the image header, or ``None`` if unreadable.

    Pillow (a dependency of matplotlib, which the package requires) reads only the
    header, so sizing 200k CelebA images costs seconds, not a full decode.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, SyntaxError):
        return None


def whole_image_box(path, box_extension):
    """A box that the prep step's ``--box-extension`` grows into exactly the whole image.

    For datasets distributed as aligned face crops (RAF-DB ``aligned``, CelebA
    ``img_align_celeba``) the face geometry *is* the image: the box is the image
    shrunk by ``1 / (1 + box_extension)`` about its centre, so after extension the
    crop is the full aligned image. ``None`` when the header cannot be read (the prep
    step then reports the image problem itself).
    """
    size = image_size(path)
    if size is None:
        return None
    width, height = size
    scale = 1.0 / (1.0 + box_extension)
    half_w, half_h = 0.5 * width * scale, 0.5 * height * scale
    cx, cy = 0.5 * width, 0.5 * height
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])


def add_split_seed_argument(parser, help_text):
    parser.add_argument("--split-seed", type=int, default=0, help=help_text)


BOX_COLUMNS = ("face_x", "face_y", "face_w", "face_h")


def box_from_row(row):
    """Optional given face box (x0, y0, x1, y1) from ``face_x, face_y, face_w, face_h``.

    ``None`` when the cells are absent or empty; ValueError naming the problem otherwise.
    """
    cells = [(row.get(c) or "").strip() for c in BOX_COLUMNS]
    if not any(cells):
        return None
    if not all(cells):
        raise ValueError(f"face box: fill all of {', '.join(BOX_COLUMNS)} or none")
    try:
        x, y, w, h = (float(c) for c in cells)
    except ValueError:
        raise ValueError(f"face box cells must be numbers, got {cells}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"face box width and height must be > 0, got {w:g} x {h:g}")
    return np.array([x, y, x + w, y + h])


def id_map(values):
    """Sorted unique non-empty strings -> 0..n-1 (numeric order when all are integers)."""
    unique = {v for v in values if v}
    numeric = all(v.isdigit() for v in unique)
    return {v: i for i, v in enumerate(sorted(unique, key=int if numeric else str))}
