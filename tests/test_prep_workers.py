"""Preparation over several machines: ``--num-workers N --worker-index i`` parts and
``fermtl-prep merge`` (issue 13, item 8b)."""

import json
import os

import numpy as np
import pytest
from test_prep import read_records, write_dataset

from fermtl_tf.cli.prep import main
from fermtl_tf.data.parts import shard_sizes, worker_shards

#: 11 rows, 2 per shard: 6 shards, the last one short; rows 3 and 8 are skipped.
ROWS = [{"expression": "happiness"}, {}, {"expression": "sadness"}, {"expression": "joy"}, {}, {},
        {"expression": "fear"}, {}, {"landmarks": np.zeros((5, 2))}, {}, {}]


def prep(csv_path, out, *extra):
    return main(["manifest", "--csv", str(csv_path), "--out", str(out), "--quiet",
                 "--crop-from", "landmarks", "--size", "32", "--records-per-shard", "2",
                 *extra])


def worker(csv_path, out, index, num_workers=3, *extra):
    return prep(csv_path, out, "--num-workers", str(num_workers), "--worker-index",
                str(index), *extra)


def merge(out, *parts):
    return main(["merge", "--out", str(out), "--quiet", *map(str, parts)])


def folder_bytes(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """(csv, one-machine folder, the three worker parts)."""
    root = tmp_path_factory.mktemp("workers")
    csv_path, _ = write_dataset(root, ROWS, shape=(48, 48))
    assert prep(csv_path, root / "one") == 0
    parts = [root / f"part-{i}" for i in range(3)]
    for index, part in enumerate(parts):
        assert worker(csv_path, part, index) == 0
    return csv_path, root / "one", parts


def test_partition_is_round_robin_over_the_one_machine_shards():
    assert [worker_shards(6, 3, i) for i in range(3)] == [[0, 3], [1, 4], [2, 5]]
    assert worker_shards(2, 3, 2) == []
    assert shard_sizes(11, 2) == [2, 2, 2, 2, 2, 1]
    assert shard_sizes(0, 4) == [0]


def test_each_worker_writes_only_its_shards_and_a_part_record(prepared):
    _, one, parts = prepared
    reference = folder_bytes(one)
    for index, part in enumerate(parts):
        files = folder_bytes(part)
        assert "manifest.json" not in files  # not a dataset a reader could take whole
        record = json.loads(files.pop("part.json"))
        assert (record["worker_index"], record["num_workers"]) == (index, 3)
        shards = sorted(name for name in files if name.startswith("shard-"))
        assert shards == [f"shard-{k:05d}-of-00006.tfrecord" for k in (index, index + 3)]
        for name in shards:  # the very bytes of the one-machine run's shard
            assert files[name] == reference[name], name


def test_merged_parts_are_the_one_machine_dataset(prepared, tmp_path):
    _, one, parts = prepared
    assert merge(tmp_path / "final", *reversed(parts)) == 0  # any order of the parts
    assert folder_bytes(tmp_path / "final") == folder_bytes(one)
    manifest, records = read_records(tmp_path / "final")
    _, expected = read_records(one)
    assert manifest["counts"] == {"rows": 11, "not_selected": 0, "inputs": 11,
                                  "written": 9, "skipped": 2}
    assert len(records) == 9
    for got, want in zip(records, expected, strict=True):  # decoded, in order
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    # a rerun of the merge (e.g. after an interruption) writes the same bytes
    assert merge(tmp_path / "final", *parts) == 0
    assert folder_bytes(tmp_path / "final") == folder_bytes(one)


def test_rerunning_a_finished_worker_keeps_every_byte(prepared):
    csv_path, _, parts = prepared
    before = folder_bytes(parts[1])
    assert worker(csv_path, parts[1], 1) == 0
    assert folder_bytes(parts[1]) == before


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fermtl-prep: error: "), err
    return err[0]


def test_merge_refuses_incomplete_duplicate_and_foreign_parts(prepared, tmp_path, capsys):
    csv_path, _, parts = prepared
    out = tmp_path / "final"
    assert merge(out, parts[0], parts[2]) == 2
    assert "part(s) 1 of 3 missing" in error_line(capsys)
    assert merge(out, parts[0], parts[1], parts[1]) == 2
    assert "worker part 1 given twice" in error_line(capsys)
    other = tmp_path / "other-size"
    assert worker(csv_path, other, 1, 3, "--size", "24") == 0
    assert merge(out, parts[0], other, parts[2]) == 2
    assert "'dataset_fingerprint' differ" in error_line(capsys)
    two = tmp_path / "of-two"
    assert worker(csv_path, two, 1, 2) == 0
    assert merge(out, parts[0], two, parts[2]) == 2
    assert "'num_workers' differ" in error_line(capsys)
    assert merge(out, parts[0], tmp_path, parts[2]) == 2
    assert f"{tmp_path}: no part.json" in error_line(capsys)
    assert not out.exists()  # nothing written by a refused merge


def test_merge_refuses_a_part_whose_shard_changed(prepared, tmp_path, capsys):
    csv_path, _, parts = prepared
    copy = tmp_path / "part-2"
    assert worker(csv_path, copy, 2) == 0
    shard = copy / "shard-00005-of-00006.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-1])
    assert merge(tmp_path / "final", parts[0], parts[1], copy) == 2
    line = error_line(capsys)
    assert str(copy) in line and "shard-00005-of-00006.tfrecord" in line
    assert "checksum" in line


def test_worker_options_are_checked(prepared, tmp_path, capsys):
    csv_path, _, _ = prepared
    assert worker(csv_path, tmp_path / "p", 3, 3) == 2
    assert "'worker_index' must be in 0..num_workers - 1 = 2" in error_line(capsys)
