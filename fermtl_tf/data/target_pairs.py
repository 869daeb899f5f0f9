"""Target pairs for expression synthesis: a real face of the same person with another
expression, per training sample (Zhao et al., FERSNet §IV-A: "we randomly select a target
label z_i^t with the corresponding facial image I_i^t for each training sample").

:class:`TargetPool` holds the candidate targets (images, expressions, identities) in
memory, typically the training split read once without augmentation (centre crop);
:func:`add_target_pairs` is a tf.data stage that adds to every batch dict

* ``target_expression`` int32 [B]: drawn uniformly among the expressions, other than the
  sample's own, that the pool has for the sample's identity;
* ``target_image`` float32 [B, H, W, 3]: drawn uniformly among the pool's images of that
  identity with that expression.

Draws are stateless random functions of ``(seed, epoch, batch index)``: every epoch
draws new pairs (the paper selects targets at random during training, not once), and
epoch k draws the same pairs in any run, a resumed one included. Keras iterates the
training dataset once per epoch; the stage counts those iterations from ``first_epoch``
(the epoch a resumed run starts at, as :mod:`fermtl_tf.data.tuple_sampling` does).
A sample whose identity has no image of another expression in the pool stops the
pipeline with an error naming the identities.
"""

import itertools

import numpy as np
import tensorflow as tf

_NEEDED_KEYS = ("image", "expression", "identity")


def _check_keys(batch, where):
    missing = [key for key in _NEEDED_KEYS if key not in batch]
    if missing:
        raise KeyError(f"target pairs need {missing} in the {where}; it has {sorted(batch)}.")


class TargetPool:
    """Candidate target images with their expression and identity labels.

    Args:
        images: [N, H, W, 3], normalised like the training images.
        expressions: int [N], every one a valid class index (>= 0).
        identities: int [N], every one a valid identity (>= 0).
    """

    def __init__(self, images, expressions, identities):
        expressions = np.asarray(expressions, np.int32).reshape(-1)
        identities = np.asarray(identities, np.int32).reshape(-1)
        images = np.asarray(images, np.float32)
        if not len(images) == len(expressions) == len(identities) or len(images) == 0:
            raise ValueError(f"TargetPool needs as many images as labels, at least one; got "
                             f"{len(images)} images, {len(expressions)} expressions, "
                             f"{len(identities)} identities.")
        for name, values in (("expression", expressions), ("identity", identities)):
            if (values < 0).any():
                raise ValueError(f"TargetPool: {int((values < 0).sum())} samples have no "
                                 f"{name} label (< 0); FERSNet pairs need both labels.")
        self.images, self.expressions, self.identities = images, expressions, identities
        self.num_classes = int(expressions.max()) + 1

    @classmethod
    def from_dataset(cls, dataset):
        """Read a finite dataset of batch dicts (``image``, ``expression``, ``identity``,
        optional ``expression_mask``); samples without an expression label are left out
        (counted in ``unlabelled``)."""
        parts = {key: [] for key in _NEEDED_KEYS}
        unlabelled = 0
        for batch in dataset.as_numpy_iterator():
            _check_keys(batch, "pool dataset")
            keep = np.ones(len(batch["image"]), bool)
            if "expression_mask" in batch:
                keep = np.asarray(batch["expression_mask"]) > 0
            unlabelled += int((~keep).sum())
            for key in _NEEDED_KEYS:
                parts[key].append(np.asarray(batch[key])[keep])
        if not parts["image"]:
            raise ValueError("TargetPool.from_dataset: the dataset is empty.")
        pool = cls(*(np.concatenate(parts[key]) for key in _NEEDED_KEYS))
        pool.unlabelled = unlabelled
        return pool

    def unpairable_identities(self):
        """Identities with fewer than two expressions in the pool (none can be paired)."""
        pairs = set(zip(self.identities.tolist(), self.expressions.tolist(), strict=True))
        counts = {}
        for identity, _ in pairs:
            counts[identity] = counts.get(identity, 0) + 1
        return sorted(identity for identity, count in counts.items() if count < 2)


def _choose(allowed, uniform):
    """Per row, the index of a uniformly chosen allowed column (rows have at least one)."""
    return tf.argmax(tf.where(allowed, uniform, -1.0), axis=1, output_type=tf.int32)


def draw_targets(identities, expressions, pool, seed):
    """(target_expression, pool index) per sample for one batch; ``seed`` is a shape-[2]
    int tensor for the stateless draws. Raises InvalidArgumentError for unpaired samples."""
    identities = tf.cast(tf.reshape(identities, [-1]), tf.int32)
    expressions = tf.cast(tf.reshape(expressions, [-1]), tf.int32)
    pool_identities = tf.constant(pool.identities)
    pool_expressions = tf.constant(pool.expressions)
    candidates = tf.logical_and(identities[:, None] == pool_identities[None, :],
                                expressions[:, None] != pool_expressions[None, :])
    per_class = tf.matmul(tf.cast(candidates, tf.float32),
                          tf.one_hot(pool_expressions, pool.num_classes))
    available = per_class > 0
    paired = tf.reduce_any(available, axis=1)
    tf.debugging.Assert(tf.reduce_all(paired), [
        "FERSNet target pairs: the pool has no image of another expression for identities",
        tf.boolean_mask(identities, tf.logical_not(paired)),
    ], summarize=32)
    uniform = tf.random.stateless_uniform(
        [tf.shape(identities)[0], pool.num_classes + len(pool.expressions)], seed)
    target = _choose(available, uniform[:, :pool.num_classes])
    images = tf.logical_and(candidates, pool_expressions[None, :] == target[:, None])
    return target, _choose(images, uniform[:, pool.num_classes:])


def _epoch_numbers(first_epoch):
    """A dataset yielding, forever, the number of the epoch its current iteration is.

    Each iteration of the dataset calls the generator function anew, which takes the next
    epoch number: the n-th iteration (n from 0) is epoch ``first_epoch + n``.
    """
    epochs = itertools.count(int(first_epoch))

    def numbers():
        yield from itertools.repeat(next(epochs))

    return tf.data.Dataset.from_generator(numbers,
                                          output_signature=tf.TensorSpec([], tf.int64))


def add_target_pairs(dataset, pool, seed=0, first_epoch=0, steps_per_epoch=None):
    """tf.data stage: batch dicts -> the same with ``target_image``, ``target_expression``.

    Every sample must carry an expression label (``expression_mask`` 1 where present):
    FERSNet's cycle loss (Eq. 8) translates the synthesis back to the source expression.
    The draws of batch i of epoch e are a function of ``(seed, e, i)`` only; pass the
    epoch a resumed run starts at as ``first_epoch``. Epochs are the iterations of
    ``dataset`` (the n-th is epoch ``first_epoch + n``) or, with ``steps_per_epoch``, the
    consecutive runs of that many batches of one endless ``dataset`` (the pipeline's
    training stream, which ``fit`` reads with one iterator).
    """
    _check_keys(dataset.element_spec, "dataset")
    pool_images = tf.constant(pool.images)
    cardinality = int(dataset.cardinality())

    def pair(epoch, index_and_batch):
        index, batch = index_and_batch
        if "expression_mask" in batch:
            tf.debugging.assert_equal(
                tf.cast(batch["expression_mask"], tf.float32), 1.0,
                message="FERSNet target pairs: every training sample needs an expression "
                        "label (expression_mask 0 found)")
        epoch_seed = tf.stack([tf.constant(int(seed), tf.int64), epoch])
        step_seed = tf.random.experimental.stateless_fold_in(epoch_seed, index)
        target, source = draw_targets(batch["identity"], batch["expression"], pool, step_seed)
        images = tf.gather(pool_images, source)
        return {**batch, "target_expression": target,
                "target_image": tf.cast(images, batch["image"].dtype)}

    if steps_per_epoch:
        steps = tf.constant(int(steps_per_epoch), tf.int64)
        numbered = dataset.enumerate().map(
            lambda i, batch: (first_epoch + i // steps, (i % steps, batch)))
    else:
        numbered = tf.data.Dataset.zip(_epoch_numbers(first_epoch), dataset.enumerate())
    paired = numbered.map(pair)
    if cardinality >= 0:  # the endless epoch stream hides the length Keras needs
        paired = paired.apply(tf.data.experimental.assert_cardinality(cardinality))
    return paired
