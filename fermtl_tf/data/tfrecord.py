"""Sharded, atomic TFRecord writing and a plain reader.

Every file lands by "write a temporary file, then ``os.replace``": a run killed at any
moment leaves either the old file, the complete new file, or a stray ``<name>.tmp`` that
the next run deletes (:mod:`fermtl_tf.data.output_folder`), never a half-written shard or
manifest. Shard names follow
``shard-00003-of-00012.tfrecord`` and shard ``k`` always holds the same inputs, so a
restarted run can keep the shards whose checksum it recorded and redo the others.
"""

import glob
import hashlib
import json
import os

import numpy as np

SHARD_PATTERN = "shard-*-of-*.tfrecord"
TMP_SUFFIX = ".tmp"


def shard_name(index, num_shards):
    """File name of shard ``index`` (0-based) out of ``num_shards``."""
    return f"shard-{index:05d}-of-{num_shards:05d}.tfrecord"


def sha256_file(path, chunk_size=1 << 20):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_replace(tmp_path, path):
    with open(tmp_path, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp_path, path)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    tmp_path = os.fspath(path) + TMP_SUFFIX
    with open(tmp_path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp_path, path)


def to_jsonable(value):
    """Recursively turn numpy scalars/arrays (and tuples) into plain JSON types."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def atomic_write_json(path, payload):
    """Write ``payload`` as indented, key-sorted JSON, atomically (numpy scalars cast)."""
    text = json.dumps(to_jsonable(payload), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


class ShardedWriter:
    """Writes a dataset as ``num_shards`` TFRecord files in ``folder``, each atomically.

    >>> writer = ShardedWriter("/tmp/out", num_shards=3)   # doctest: +SKIP
    >>> info = writer.write_shard(0, [example_bytes, ...])  # doctest: +SKIP
    >>> info["sha256"] == sha256_file(writer.path(0))       # doctest: +SKIP

    ``write_shard`` returns ``{"path", "num_records", "sha256"}`` (path relative to the
    folder), the entry recorded in ``manifest.json``. ``is_complete`` tells a restarted
    run whether a shard on disk is the one it recorded.
    """

    def __init__(self, folder, num_shards):
        self.folder = os.fspath(folder)
        self.num_shards = int(num_shards)
        os.makedirs(self.folder, exist_ok=True)

    def path(self, index):
        return os.path.join(self.folder, shard_name(index, self.num_shards))

    def write_shard(self, index, serialized_records):
        if not 0 <= index < self.num_shards:
            raise IndexError(f"shard {index} outside 0..{self.num_shards - 1}")
        path = self.path(index)
        tmp_path = path + TMP_SUFFIX
        import tensorflow as tf  # lazy: `fermtl-prep --help` should not wait for TF

        count = 0
        with tf.io.TFRecordWriter(tmp_path) as writer:
            for record in serialized_records:
                writer.write(record)
                count += 1
        _fsync_replace(tmp_path, path)
        return {"path": os.path.basename(path), "num_records": count, "sha256": sha256_file(path)}

    def is_complete(self, info):
        """True if the shard file named in ``info`` exists with the recorded checksum."""
        path = os.path.join(self.folder, info["path"])
        return os.path.isfile(path) and sha256_file(path) == info["sha256"]


def shard_paths(folder):
    """The shard files of a prepared folder, in shard order."""
    return sorted(glob.glob(os.path.join(os.fspath(folder), SHARD_PATTERN)))


def iter_records(folder):
    """Yield every serialised example of a prepared folder, shard by shard, in order."""
    import tensorflow as tf

    for path in shard_paths(folder):
        yield from tf.data.TFRecordDataset(path).as_numpy_iterator()


def read_manifest(folder):
    """The ``manifest.json`` of a prepared folder as a dict."""
    with open(os.path.join(os.fspath(folder), "manifest.json"), encoding="utf-8") as handle:
        return json.load(handle)
