"""What every source importer produces, and the error type of data preparation.

An importer turns a dataset's native layout into an :class:`ImportedDataset`: a list of
:class:`FaceInput` (one image each, labels already mapped to the package's vocabularies
and integer ids) plus the dataset-level names that go into ``manifest.json``. Reading
pixels, cropping and writing shards is the orchestrator's job
(:mod:`fermtl_tf.data.prepare`), so an importer never touches TensorFlow.

A problem with one input (a label outside the vocabulary, a malformed row) is *not* an
exception: the input carries ``error`` and is listed as skipped in the manifest. A
problem with the dataset as a whole (no CSV, no rows, bad columns) raises
:class:`PrepError` with a message naming the file.
"""

from dataclasses import dataclass, field

import numpy as np


class PrepError(Exception):
    """A data-preparation problem explained in one sentence naming the file (and row)."""


@dataclass
class FaceInput:
    """One image to prepare and its labels (``None`` / mask 0 where not annotated).

    ``where`` names the input in messages (e.g. ``"labels.csv line 7"``); ``image_id``
    is what is stored in the record and listed in the manifest. ``landmarks`` (68, 2)
    and ``face_box`` (x0, y0, x1, y1) are in original-image pixels.
    """

    image_path: str
    image_id: str
    where: str
    error: str | None = None
    identity: int = -1
    sequence_id: str = ""
    frame_index: int = -1
    split: str = ""
    fold: int = -1
    domain: int = 0
    expression: int | None = None
    landmarks: np.ndarray | None = None
    face_box: np.ndarray | None = None
    au: np.ndarray | None = None
    au_intensity: np.ndarray | None = None
    au_mask: np.ndarray | None = None
    valence: float | None = None
    arousal: float | None = None
    attributes: np.ndarray | None = None
    attributes_mask: np.ndarray | None = None


@dataclass
class ImportedDataset:
    """An importer's result: the inputs and the names the manifest records.

    ``fingerprint`` holds whatever identifies the raw data (e.g. the CSV's SHA-256);
    it enters the output folder's ``dataset_fingerprint``. ``info`` is copied into the
    manifest as ``source_info``; ``warnings`` are printed and kept in the manifest.
    """

    source: str
    inputs: list
    vocabulary_name: str
    vocabulary: tuple
    au_names: list = field(default_factory=list)
    attribute_names: list = field(default_factory=list)
    identities: dict = field(default_factory=dict)
    domains: list = field(default_factory=list)
    fingerprint: dict = field(default_factory=dict)
    seed: int | None = None
    info: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


class Source:
    """Base class of a source importer, registered under ``name``.

    Subclasses set ``name``, ``description`` (one line for ``fermtl-prep --list``) and
    ``layout`` (the expected on-disk layout, shown by ``fermtl-prep <name> --help``),
    add their own command-line options in :meth:`add_arguments`, and build the
    :class:`ImportedDataset` in :meth:`load` from the parsed arguments.

    ``prep_defaults`` changes the default of preparation options for this source only
    (keys are :class:`~fermtl_tf.data.prepare.PrepOptions` field names, e.g.
    ``{"box_extension": 0.0}`` for frames that are already cropped); ``fermtl-prep``
    applies them to the source's sub-parser, so its ``--help`` shows them and a flag on
    the command line still overrides them.
    """

    name = ""
    description = ""
    layout = ""
    prep_defaults: dict = {}  # never mutated: a subclass assigns its own dict

    def add_arguments(self, parser):
        """Add this source's options to its ``argparse`` sub-parser."""

    def load(self, args):
        """Return the :class:`ImportedDataset` described by the parsed ``args``."""
        raise NotImplementedError
