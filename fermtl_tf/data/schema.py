"""The TFRecord data contract: one ``tf.train.Example`` per face, every label masked.

One schema serves every dataset, so batches from heterogeneous sources (expressions
from one, AUs from another, valence/arousal from a third) can be mixed freely. The
lengths of the vector features (``au``, ``attributes``) are per dataset and recorded in
its ``manifest.json``; :func:`parse_spec` builds the parser from them.

Conventions
-----------
* ``image``: PNG (default) or JPEG bytes of the cropped face; its size is
  ``manifest["image_size"]`` = [height, width].
* ``landmarks``: 68 (x, y) pairs flattened x0, y0, x1, y1, ... in *crop pixel*
  coordinates (``manifest["landmarks_units"] == "pixels"``), origin at the top-left
  pixel corner. The pipeline divides by the crop size to get (0, 1) coordinates.
* ``au``: per-AU occurrence (0/1); ``au_intensity``: FACS intensity 0-5 where known
  (0 otherwise); ``au_mask``: 1 where the AU is annotated. AU names are in
  ``manifest["au_names"]``.
* ``expression``: index into ``manifest["vocabularies"]["expression"]``.
* ``face_box``: the face box the crop was made from, (x0, y0, x1, y1) in original-image
  pixels before the box extension; ``face_box_source`` says whose box it is:
  ``detected`` (MTCNN), ``annotation`` (tight box of the annotated landmarks),
  ``annotation-fallback`` (the same, because no detection matched the annotation) or
  ``given`` (the dataset's own face box). Records written before these existed read as
  zeros and ``b""``.
* Missing labels: mask 0 and a neutral filler value (0, or -1 for ``identity``).
"""

import numpy as np
import tensorflow as tf

from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS

#: The split of records that belong to no split (lab sets split by folds); older folders
#: stored "" instead, which the reader accepts under the same name.
UNASSIGNED_SPLIT = "unassigned"

#: Scalar features: name -> (dtype, default written when the value is missing).
SCALAR_FEATURES = {
    "image_id": (tf.string, b""),
    "source": (tf.string, b""),
    "identity": (tf.int64, -1),
    "sequence_id": (tf.string, b""),
    "frame_index": (tf.int64, -1),
    "expression": (tf.int64, 0),
    "expression_mask": (tf.int64, 0),
    "landmarks_mask": (tf.int64, 0),
    "valence": (tf.float32, 0.0),
    "arousal": (tf.float32, 0.0),
    "va_mask": (tf.int64, 0),
    "domain": (tf.int64, 0),
    "fold": (tf.int64, -1),
    "split": (tf.string, b""),
    "face_box_source": (tf.string, b""),
}

#: Vector features and their length: an int, or the manifest key giving the length.
VECTOR_FEATURES = {
    "landmarks": (tf.float32, 2 * NUM_LANDMARKS),
    "au": (tf.float32, "num_aus"),
    "au_intensity": (tf.float32, "num_aus"),
    "au_mask": (tf.float32, "num_aus"),
    "attributes": (tf.float32, "num_attributes"),
    "attributes_mask": (tf.float32, "num_attributes"),
    "face_box": (tf.float32, 4),
}

FEATURE_NAMES = ("image",) + tuple(SCALAR_FEATURES) + tuple(VECTOR_FEATURES)


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _int64(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _float(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def vector_length(name, num_aus, num_attributes):
    """Length of vector feature ``name`` for a dataset with these AU and attribute counts."""
    length = VECTOR_FEATURES[name][1]
    return {"num_aus": num_aus, "num_attributes": num_attributes}.get(length, length)


def encode_example(record, num_aus, num_attributes):
    """Serialise one face ``record`` (a dict) into ``tf.train.Example`` bytes.

    ``record`` must hold ``image`` (encoded bytes); every other feature is optional and
    takes its documented default when absent. Vector features are checked against the
    dataset's lengths so that a wrong-sized label is an error here, not a parse failure
    at training time.
    """
    unknown = set(record) - set(FEATURE_NAMES)
    if unknown:
        raise KeyError(f"unknown record feature(s): {sorted(unknown)}")
    if "image" not in record:
        raise KeyError("record has no 'image' bytes")
    feature = {"image": _bytes([bytes(record["image"])])}
    for name, (dtype, default) in SCALAR_FEATURES.items():
        value = record.get(name, default)
        if dtype == tf.string:
            value = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            feature[name] = _bytes([value])
        elif dtype == tf.int64:
            feature[name] = _int64([int(value)])
        else:
            feature[name] = _float([float(value)])
    for name in VECTOR_FEATURES:
        length = vector_length(name, num_aus, num_attributes)
        value = record.get(name)
        value = np.zeros(length, np.float32) if value is None else np.asarray(value, np.float32).ravel()
        if value.size != length:
            raise ValueError(f"feature {name!r} has {value.size} values, the dataset expects {length}")
        feature[name] = _float(value.tolist())
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Protobuf map order varies between processes; sorted keys make records byte-stable,
    # so an interrupted and resumed preparation writes the same shards as one run.
    return example.SerializeToString(deterministic=True)


def parse_spec(num_aus, num_attributes):
    """``tf.io.parse_example`` feature spec for a dataset with these vector lengths."""
    spec = {"image": tf.io.FixedLenFeature([], tf.string)}
    for name, (dtype, default) in SCALAR_FEATURES.items():
        spec[name] = tf.io.FixedLenFeature([], dtype, default_value=default)
    for name, (dtype, _) in VECTOR_FEATURES.items():
        length = vector_length(name, num_aus, num_attributes)
        spec[name] = tf.io.FixedLenFeature([length], dtype, default_value=[0.0] * length)
    return spec


def decode_example(serialized, num_aus, num_attributes):
    """Parse one serialised example into a dict of tensors (image still encoded)."""
    return tf.io.parse_single_example(serialized, parse_spec(num_aus, num_attributes))
