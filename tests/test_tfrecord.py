"""Sharded atomic TFRecord writer: names, checksums, crash safety, JSON casting."""

import hashlib
import json
import os

import numpy as np
import pytest

from fermtl_tf.data import tfrecord


def test_shard_name_is_zero_padded_index_of_total():
    assert tfrecord.shard_name(3, 12) == "shard-00003-of-00012.tfrecord"


def test_written_shard_reads_back_in_order_with_its_sha256(tmp_path):
    writer = tfrecord.ShardedWriter(tmp_path, num_shards=2)
    first = writer.write_shard(0, [b"a", b"bb"])
    second = writer.write_shard(1, [b"ccc"])
    assert list(tfrecord.iter_records(tmp_path)) == [b"a", b"bb", b"ccc"]
    data = (tmp_path / first["path"]).read_bytes()
    assert first == {"path": "shard-00000-of-00002.tfrecord", "num_records": 2,
                     "sha256": hashlib.sha256(data).hexdigest()}
    assert second["num_records"] == 1


def test_failed_write_leaves_the_previous_shard_untouched(tmp_path):
    writer = tfrecord.ShardedWriter(tmp_path, num_shards=1)
    info = writer.write_shard(0, [b"old"])

    def exploding():
        yield b"new"
        raise RuntimeError("killed mid-shard")

    with pytest.raises(RuntimeError):
        writer.write_shard(0, exploding())
    assert writer.is_complete(info)
    assert list(tfrecord.iter_records(tmp_path)) == [b"old"]
    assert os.path.exists(writer.path(0) + tfrecord.TMP_SUFFIX)


def test_remove_own_files_deletes_only_this_tools_temporaries_and_unlisted_shards(tmp_path):
    from fermtl_tf.data.output_folder import remove_own_files

    writer = tfrecord.ShardedWriter(tmp_path, num_shards=2)
    keep = writer.write_shard(0, [b"x"])["path"]
    writer.write_shard(1, [b"y"])
    (tmp_path / "manifest.json.tmp").write_bytes(b"partial")
    (tmp_path / "shard-00000-of-00002.tfrecord.tmp").write_bytes(b"partial")
    users = ["notes.tmp", "shard-1-of-2.tfrecord", "my-shard-00000-of-00002.tfrecord"]
    for name in users:
        (tmp_path / name).write_bytes(b"the user's")
    removed = remove_own_files(tmp_path, keep={keep})
    assert removed == ["manifest.json.tmp", "shard-00000-of-00002.tfrecord.tmp",
                       "shard-00001-of-00002.tfrecord"]
    assert sorted(os.listdir(tmp_path)) == sorted([keep, *users])


def test_is_complete_detects_a_changed_shard(tmp_path):
    writer = tfrecord.ShardedWriter(tmp_path, num_shards=1)
    info = writer.write_shard(0, [b"abc"])
    with open(writer.path(0), "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        handle.write(b"\x00")
    assert not writer.is_complete(info)


def test_atomic_write_json_casts_numpy_values(tmp_path):
    path = tmp_path / "m.json"
    tfrecord.atomic_write_json(path, {"n": np.int64(3), "x": np.float32(0.5),
                                      "v": np.arange(2), "t": (np.bool_(True),)})
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "v": [0, 1], "t": [True]}
    assert not os.path.exists(str(path) + tfrecord.TMP_SUFFIX)
