"""The ``emotionet`` source: EmotioNet challenge spreadsheets + images fetched by the user.

A spreadsheet row is one image URL and ``AU n`` columns (1 present, 0 absent, 999
unknown -> masked). The images are not shipped; the user downloads them into one folder,
and the row's file name is, by ``--naming``: ``basename`` (the URL's last path
component, percent-decoded, query dropped) or ``row`` (the 1-based data row number, any
zero padding); a column named ``image``/``file``/``filename`` overrides both. A file
with the same stem and another image extension is accepted (downloaders re-encode).
The optional ``emotion`` column (basic + compound set, FaceBehaviorNet's zero-shot test,
Kollias et al. §5.5) is read with ``--expressions basic`` (6 basic classes -> basic7)
or ``compound`` (compound classes -> rafce14 names). CSV only: .xlsx needs openpyxl,
which is not a dependency; save the sheet as CSV.
"""

import csv
import os
import re
from urllib.parse import unquote, urlsplit

from fermtl_tf.data.sources._au_video_common import (
    IMAGE_EXTENSIONS,
    RowError,
    au_vectors,
    fingerprint_files,
    number,
    require_root,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7, RAFCE14

UNKNOWN = 999
_AU_HEADER = re.compile(r"^AU\s*(\d+)$", re.IGNORECASE)
_FILE_COLUMNS = ("image", "file", "filename", "image_path")
_EMOTION_COLUMNS = ("emotion", "expression", "category")
#: Basic-category spellings (EmotioNet uses adjectives, e.g. "happy", "fearful").
BASIC_NAMES = {
    "neutral": "neutral", "angry": "anger", "anger": "anger", "disgusted": "disgust",
    "disgust": "disgust", "fearful": "fear", "fear": "fear", "happy": "happiness",
    "happiness": "happiness", "sad": "sadness", "sadness": "sadness",
    "surprised": "surprise", "surprise": "surprise",
}


def normalise_category(text):
    """``"Happily Surprised"`` / ``"happily-surprised"`` -> ``"happily_surprised"``."""
    return re.sub(r"[\s\-]+", "_", text.strip().lower())


def url_file_name(url):
    """The file name a URL's download gets: last path component, decoded, no query."""
    return os.path.basename(unquote(urlsplit(url.strip()).path))


class _Images:
    """File lookup in the image folder: exact name, else same stem + image extension."""

    def __init__(self, folder):
        self.folder = folder
        self.by_stem = {}
        for name in sorted(os.listdir(folder)):
            stem, extension = os.path.splitext(name)
            if extension.lower() in IMAGE_EXTENSIONS:
                self.by_stem.setdefault(stem, name)
                if stem.isdigit():
                    self.by_stem.setdefault(str(int(stem)), name)

    def find(self, name):
        if name and os.path.isfile(os.path.join(self.folder, name)):
            return os.path.join(self.folder, name)
        match = self.by_stem.get(os.path.splitext(name)[0])
        return os.path.join(self.folder, match) if match else None


def read_sheet(path):
    """(header, [(line, cells)]) of a CSV spreadsheet; PrepError for the whole file."""
    if path.lower().endswith((".xlsx", ".xls")):
        raise PrepError(f"{path}: Excel files need openpyxl, which fermtl-tf does not "
                        "install; save the sheet as CSV (File > Save as > CSV) and pass that")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise PrepError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PrepError(f"{path}: cannot read the CSV ({error})") from None
    if len(rows) < 2:
        raise PrepError(f"{path}: expected a header row and at least one image row")
    return [c.strip() for c in rows[0][1]], rows[1:]


class EmotioNetSource(Source):
    name = "emotionet"
    description = "EmotioNet: in-the-wild images with 11 manual AUs (999 = unknown), CSV of URLs"
    layout = """\
Expected input:
  --labels [SPLIT=]sheet.csv   the challenge spreadsheet saved as CSV (repeatable, e.g.
                               --labels val=validation.csv --labels test=test.csv):
                               a URL column (header containing "url", else the first
                               column), "AU 1", "AU 2", ... columns (1, 0, 999 = unknown)
                               and optionally "emotion" (basic/compound category name)
  --root DIR                   the images you downloaded, named by --naming:
                               basename = the URL's last path component (default),
                               row = the data row number (1.jpg, 000001.jpg, ...);
                               an image/file/filename column overrides both.
.xlsx is not read (no openpyxl): save it as CSV. No landmarks: faces are detected."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder of the downloaded images")
        parser.add_argument("--labels", action="append", required=True,
                            help="[SPLIT=]spreadsheet.csv (repeatable)")
        parser.add_argument("--naming", default="basename", choices=("basename", "row"),
                            help="how a row's image file is named (default basename)")
        parser.add_argument("--expressions", default="none",
                            choices=("none", "basic", "compound"),
                            help="read the emotion column as basic7 or rafce14 classes "
                                 "(default none)")

    def load(self, args):
        root = require_root(args.root, self.name)
        images = _Images(root)
        vocab_name, vocab = ("rafce14", RAFCE14) if args.expressions == "compound" \
            else ("basic7", BASIC7)
        inputs, pending, au_numbers, sheets, seen = [], [], [], [], {}
        for spec in args.labels:
            split, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
            path = os.path.abspath(path)
            sheets.append(path)
            header, rows = read_sheet(path)
            columns = self._columns(header, path)
            au_numbers += [n for n in columns["aus"].values() if n not in au_numbers]
            for row, (line, cells) in enumerate(rows, start=1):
                if any(c.strip() for c in cells):
                    face, values = self._face((row, line), cells, header, columns, path,
                                              split, images, args, vocab, seen)
                    inputs.append(face)
                    pending.append((face, values))
        for face, values in pending:  # the AU list is complete only after every sheet
            if values is not None:
                face.au, face.au_intensity, face.au_mask = au_vectors(au_numbers, values)
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name=vocab_name, vocabulary=vocab,
            au_names=[f"AU{n}" for n in au_numbers], domains=[self.name],
            fingerprint=fingerprint_files(sheets, root, {
                "naming": args.naming, "expressions": args.expressions,
                "splits": [s.rpartition("=")[0] for s in args.labels]}),
            info={"root": root, "sheets": sheets, "naming": args.naming},
        )

    @staticmethod
    def _columns(header, path):
        lower = [h.lower() for h in header]
        aus = {i: int(m.group(1)) for i, h in enumerate(header) if (m := _AU_HEADER.match(h))}
        if not aus:
            raise PrepError(f"{path}: no 'AU n' columns in the header {header[:6]}")
        url = next((i for i, h in enumerate(lower) if "url" in h), 0)
        file = next((i for i, h in enumerate(lower) if h in _FILE_COLUMNS), None)
        emotion = next((i for i, h in enumerate(lower) if h in _EMOTION_COLUMNS), None)
        return {"aus": aus, "url": url, "file": file, "emotion": emotion}

    def _face(self, position, cells, header, columns, path, split, images, args, vocab, seen):
        """``(FaceInput, {AU: value} or None)`` of one spreadsheet row."""
        row, line = position
        sheet = os.path.basename(path)
        where = f"{sheet} line {line}"
        face = FaceInput(image_path="", image_id=f"{sheet}:{line}", where=where, split=split)
        try:
            if len(cells) != len(header):
                raise RowError(f"expected {len(header)} cells, got {len(cells)}")
            name = self._file_name(row, cells, columns, args)
            face.image_id = name
            values = {}
            for index, au in columns["aus"].items():
                value = number(cells[index], f"AU {au}")
                if value not in (0, 1, UNKNOWN):
                    raise RowError(f"AU {au} must be 0, 1 or {UNKNOWN}, got {cells[index]!r}")
                values[au] = None if value == UNKNOWN else value
            face.expression = self._expression(cells, columns, vocab, args)
            if name in seen:
                raise RowError(f"image name {name!r} is also the name of {seen[name]}; "
                               "use --naming row or an image column")
            seen[name] = where
            found = images.find(name)
            if found is None:
                raise RowError(f"image not found in {images.folder}: {name}")
            face.image_path = found
        except RowError as error:
            face.error = str(error)
            return face, None
        return face, values

    @staticmethod
    def _file_name(row, cells, columns, args):
        if columns["file"] is not None and cells[columns["file"]].strip():
            return cells[columns["file"]].strip()
        if args.naming == "row":
            return str(row)
        name = url_file_name(cells[columns["url"]])
        if not name:
            raise RowError(f"no file name in the URL {cells[columns['url']]!r}")
        return name

    @staticmethod
    def _expression(cells, columns, vocab, args):
        if args.expressions == "none" or columns["emotion"] is None:
            return None
        text = normalise_category(cells[columns["emotion"]])
        if not text:
            return None
        if text not in BASIC_NAMES and text not in RAFCE14:
            raise RowError(f"unknown emotion category {cells[columns['emotion']]!r}")
        if args.expressions == "basic":  # compound rows are masked, and vice versa
            return vocab.index(BASIC_NAMES[text]) if text in BASIC_NAMES else None
        return vocab.index(text) if text in vocab else None


SOURCE = EmotioNetSource()
