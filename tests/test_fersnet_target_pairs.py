"""Target pairs for FERSNet: same identity, another expression, reproducible by seed."""

import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data.target_pairs import TargetPool, add_target_pairs

# identity -> expressions present in the pool (identity 3 has only one expression)
POOL = [(0, 0), (0, 1), (0, 1), (0, 2), (1, 0), (1, 3), (2, 2), (2, 2), (2, 4), (3, 1)]


def _pool():
    identities, expressions = np.array(POOL).T
    # each pool image is filled with its own index, so a target image names its source
    images = np.arange(len(POOL), dtype="float32")[:, None, None, None] * np.ones((1, 2, 2, 3))
    return TargetPool(images, expressions, identities)


def _batches(identities, expressions, batch_size=4):
    n = len(identities)
    data = {"image": np.zeros((n, 2, 2, 3), "float32"),
            "expression": np.asarray(expressions, "int32"),
            "expression_mask": np.ones(n, "float32"),
            "identity": np.asarray(identities, "int32")}
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def _paired(identities, expressions, seed=0):
    return list(add_target_pairs(_batches(identities, expressions), _pool(), seed)
                .as_numpy_iterator())


def test_targets_share_identity_and_differ_in_expression():
    pool = _pool()
    identities = [0, 0, 0, 1, 1, 2, 2, 2] * 5
    expressions = [0, 1, 2, 0, 3, 2, 4, 2] * 5
    for batch in _paired(identities, expressions):
        source = batch["target_image"][:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(pool.identities[source], batch["identity"])
        np.testing.assert_array_equal(pool.expressions[source], batch["target_expression"])
        assert (batch["target_expression"] != batch["expression"]).all()


def test_every_other_expression_of_the_identity_is_drawn():
    batches = _paired([0] * 64, [0] * 64)
    drawn = np.concatenate([b["target_expression"] for b in batches])
    assert set(drawn.tolist()) == {1, 2}  # identity 0 has expressions 0, 1, 2
    sources = np.concatenate([b["target_image"][:, 0, 0, 0] for b in batches]).astype(int)
    assert set(sources[drawn == 1].tolist()) == {1, 2}  # both images of expression 1


def test_same_seed_same_pairs_other_seed_other_pairs():
    identities, expressions = [0, 2, 1, 0] * 8, [1, 2, 0, 2] * 8
    first = _paired(identities, expressions, seed=3)
    again = _paired(identities, expressions, seed=3)
    other = _paired(identities, expressions, seed=4)
    stack = lambda batches: np.concatenate([b["target_image"] for b in batches])  # noqa: E731
    np.testing.assert_array_equal(stack(first), stack(again))
    assert not np.array_equal(stack(first), stack(other))


def _epochs(dataset, count):
    """The ``target_image`` sources of ``count`` successive iterations (Keras epochs)."""
    return [np.concatenate([b["target_image"][:, 0, 0, 0] for b in dataset.as_numpy_iterator()])
            for _ in range(count)]


def test_every_epoch_draws_new_pairs_and_an_epoch_repeats_by_number():
    identities, expressions = [0, 1, 2, 0] * 16, [0, 0, 2, 1] * 16
    paired = add_target_pairs(_batches(identities, expressions), _pool(), seed=5)
    assert paired.cardinality() == 16
    epoch0, epoch1, epoch2 = _epochs(paired, 3)
    assert not np.array_equal(epoch0, epoch1) and not np.array_equal(epoch1, epoch2)
    # a run resumed at epoch 1 draws what the uninterrupted run drew in epochs 1 and 2
    resumed = add_target_pairs(_batches(identities, expressions), _pool(), seed=5,
                               first_epoch=1)
    again1, again2 = _epochs(resumed, 2)
    np.testing.assert_array_equal(again1, epoch1)
    np.testing.assert_array_equal(again2, epoch2)


def test_an_endless_stream_numbers_its_epochs_by_steps_as_iterations_do():
    identities, expressions = [0, 1, 2, 0] * 16, [0, 0, 2, 1] * 16
    per_iteration = _epochs(add_target_pairs(_batches(identities, expressions), _pool(),
                                             seed=5), 3)
    stream = add_target_pairs(_batches(identities, expressions).repeat(), _pool(), seed=5,
                              steps_per_epoch=16)
    drawn = np.concatenate([b["target_image"][:, 0, 0, 0]
                            for b in stream.take(48).as_numpy_iterator()])
    np.testing.assert_array_equal(drawn, np.concatenate(per_iteration))
    # started at epoch 1 (a resumed run), the stream continues with epoch 1's draws
    resumed = add_target_pairs(_batches(identities, expressions).repeat(), _pool(), seed=5,
                               first_epoch=1, steps_per_epoch=16)
    again = np.concatenate([b["target_image"][:, 0, 0, 0]
                            for b in resumed.take(16).as_numpy_iterator()])
    np.testing.assert_array_equal(again, per_iteration[1])


@pytest.mark.parametrize("identity, expression", [(3, 1), (7, 0)])
def test_unpairable_identity_is_a_clear_error(identity, expression):
    with pytest.raises(tf.errors.InvalidArgumentError, match="another expression"):
        _paired([0, identity], [0, expression])


def test_unlabelled_sample_is_a_clear_error():
    dataset = _batches([0, 0], [0, 1]).map(
        lambda b: {**b, "expression_mask": tf.constant([1.0, 0.0])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs an expression label"):
        list(add_target_pairs(dataset, _pool()).as_numpy_iterator())


def test_pool_from_dataset_and_unpairable_identities():
    dataset = _batches(*np.array(POOL).T).map(
        lambda b: {**b, "expression_mask": tf.ones_like(b["expression_mask"])})
    pool = TargetPool.from_dataset(dataset)
    assert len(pool.images) == len(POOL) and pool.unlabelled == 0
    assert pool.unpairable_identities() == [3]


def test_pool_rejects_missing_identity_labels():
    with pytest.raises(ValueError, match="no identity label"):
        TargetPool(np.zeros((2, 2, 2, 3)), [0, 1], [0, -1])


def test_dataset_without_identity_is_rejected():
    dataset = tf.data.Dataset.from_tensors({"image": np.zeros((1, 2, 2, 3), "float32"),
                                            "expression": np.zeros(1, "int32")})
    with pytest.raises(KeyError, match="identity"):
        add_target_pairs(dataset, _pool())
