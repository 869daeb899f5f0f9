"""Identity-aware tuple sampling (Liu et al. 2017, §3, §5.2): rules, determinism, tf.data."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data import schema
from fermtl_tf.data.tuple_sampling import (
    NEGATIVE,
    POSITIVE,
    QUERY,
    TupleSampler,
    load_records,
    make_tuple_dataset,
)


def make_index():
    """8 subjects x 4 expressions, 2 images per pair, with holes.

    Subject 0 lacks expression 3; subject 1 lacks 2 and 3; subject 2 has only expression 0.
    """
    identity, expression = [], []
    for subject in range(8):
        for expr in range(4):
            if (subject, expr) in {(0, 3), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)}:
                continue
            identity += [subject, subject]
            expression += [expr, expr]
    return np.array(identity), np.array(expression)


IDENTITY, EXPRESSION = make_index()


def has(subject, expr):
    return bool(np.any((IDENTITY == subject) & (EXPRESSION == expr)))


def all_tuples(sampler, epoch):
    tuples, levels = zip(*sampler.epoch(epoch), strict=True)
    return np.concatenate(tuples), np.concatenate(levels)


@pytest.mark.parametrize("negatives", [3, 2, 5])
def test_negatives_follow_the_identity_rules(negatives):
    sampler = TupleSampler(IDENTITY, EXPRESSION, 3, negatives, queries_per_batch=4, seed=1)
    for epoch in range(3):
        tuples, levels = all_tuples(sampler, epoch)
        for row, level in zip(tuples, levels, strict=True):
            query, positives, negs = row[0], row[1:4], row[4:]
            subject, expr = IDENTITY[query], EXPRESSION[query]
            assert (EXPRESSION[negs] != expr).all(), "a negative of the query's expression"
            for neg, lv in zip(negs, level, strict=True):
                if has(subject, EXPRESSION[neg]):
                    assert IDENTITY[neg] == subject and lv == 0
                elif any(has(i, EXPRESSION[neg]) for i in IDENTITY[positives]):
                    assert IDENTITY[neg] in IDENTITY[positives] and lv == 1
                else:
                    assert lv == 2
            # With fewer slots than the subject's other expressions, all from the subject.
            own_others = sum(has(subject, e) for e in range(4) if e != expr)
            if negatives <= own_others:
                assert (IDENTITY[negs] == subject).all()
            if negatives == 3:  # N = C - 1: one negative per other expression
                assert sorted(EXPRESSION[negs]) == [e for e in range(4) if e != expr]


def test_positives_share_the_expression_and_come_from_other_subjects():
    sampler = TupleSampler(IDENTITY, EXPRESSION, 3, 3, queries_per_batch=5, seed=2)
    tuples, _ = all_tuples(sampler, 0)
    for row in tuples:
        query, positives = row[0], row[1:4]
        assert (EXPRESSION[positives] == EXPRESSION[query]).all()
        assert (IDENTITY[positives] != IDENTITY[query]).all()
        assert len(set(positives.tolist())) == 3


def test_every_record_is_a_query_once_per_epoch():
    sampler = TupleSampler(IDENTITY, EXPRESSION, 2, 3, queries_per_batch=12, seed=0)
    tuples, _ = all_tuples(sampler, 0)
    assert len(tuples) == sampler.steps_per_epoch * 12 >= len(IDENTITY)
    assert set(tuples[: len(IDENTITY), 0].tolist()) == set(range(len(IDENTITY)))


def test_sampling_is_deterministic_per_seed_and_epoch():
    def run(seed, epoch):
        return all_tuples(TupleSampler(IDENTITY, EXPRESSION, 3, 3, 4, seed=seed), epoch)[0]

    np.testing.assert_array_equal(run(5, 1), run(5, 1))
    assert not np.array_equal(run(5, 0), run(5, 1))
    assert not np.array_equal(run(5, 0), run(6, 0))


def test_sampler_rejects_missing_identities_and_single_class():
    with pytest.raises(ValueError, match="identity"):
        TupleSampler([0, -1], [0, 1], 1, 1)
    with pytest.raises(ValueError, match="two expression classes"):
        TupleSampler([0, 1], [2, 2], 1, 1)


# --- the tf.data stage on a prepared folder ----------------------------------------------

def write_folder(folder, identities, expressions, split="train"):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    name = "shard-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
        for i, (identity, expression) in enumerate(zip(identities, expressions, strict=True)):
            image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            record = {"image": tf.io.encode_png(image).numpy(), "image_id": f"i{i}",
                      "identity": int(identity), "expression": int(expression),
                      "expression_mask": 1, "split": split, "frame_index": i,
                      "fold": int(identity) % 2}
            writer.write(schema.encode_example(record, num_aus=0, num_attributes=0))
    manifest = {"image_size": [20, 20], "au_names": [], "num_aus": 0, "num_attributes": 0,
                "attribute_names": [], "splits": {split: len(identities)},
                "shards": [{"path": name, "num_records": len(identities)}]}
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    return folder


def test_tuple_dataset_batches_follow_the_layout(tmp_path):
    folder = write_folder(str(tmp_path / "ds"), IDENTITY, EXPRESSION)
    kwargs = dict(queries_per_batch=3, positives_per_query=2, negatives_per_query=3,
                  image_size=(16, 16), augment={"flip": True}, seed=4)
    first = list(make_tuple_dataset(folder, **kwargs).take(2).as_numpy_iterator())
    again = list(make_tuple_dataset(folder, **kwargs).take(2).as_numpy_iterator())
    batch = first[0]
    assert batch["image"].shape == (3 * 6, 16, 16, 3)
    np.testing.assert_array_equal(batch["tuple_role"], [QUERY] + [POSITIVE] * 2 + [NEGATIVE] * 3
                                  + [QUERY] + [POSITIVE] * 2 + [NEGATIVE] * 3
                                  + [QUERY] + [POSITIVE] * 2 + [NEGATIVE] * 3)
    expression = batch["expression"].reshape(3, 6)
    identity = batch["identity"].reshape(3, 6)
    assert (expression[:, 1:3] == expression[:, :1]).all()
    assert (expression[:, 3:] != expression[:, :1]).all()
    for row_id, row_expr in zip(identity, expression, strict=True):
        for neg_id, neg_expr in zip(row_id[3:], row_expr[3:], strict=True):
            assert neg_id == row_id[0] or not has(row_id[0], neg_expr)
    for a, b in zip(first, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    dataset = make_tuple_dataset(folder, **kwargs)
    assert int(dataset.cardinality()) == -(-len(IDENTITY) // 3)


def test_folds_select_the_records(tmp_path):
    folder = write_folder(str(tmp_path / "ds"), IDENTITY, EXPRESSION)
    arrays, _ = load_records(folder, folds=[1])
    np.testing.assert_array_equal(np.sort(arrays["identity"]), np.sort(IDENTITY[IDENTITY % 2 == 1]))
    arrays, _ = load_records(folder, exclude_folds=1)
    assert (arrays["identity"] % 2 == 0).all() and len(arrays["identity"]) == (IDENTITY % 2 == 0).sum()


def test_missing_identity_error_names_the_folder_and_the_csv_column(tmp_path):
    identities = IDENTITY.copy()
    identities[:3] = -1
    folder = write_folder(str(tmp_path / "sfew_like"), identities, EXPRESSION)
    with pytest.raises(ValueError, match="sfew_like.*3 of .*'identity' column"):
        make_tuple_dataset(folder, positives_per_query=1, negatives_per_query=1)
