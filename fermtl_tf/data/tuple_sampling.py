"""Identity-aware tuple sampling (Liu et al. 2017, §3 and §5.2) as a tf.data stage.

Every training image is a query once per epoch (§4: "every training image is used as a
query example in an epoch"). For a query of expression e and subject s a tuple holds

* the query itself;
* P *positives*: other images of expression e, drawn at random from other subjects
  (Fig. 2: "images of the same expression from different subjects"; §5.2: "random
  searching is employed to select the other ... same expression images");
* N *negatives*: the same subject's images of the *other* expressions (§3: "we compose
  its negative set with all the different expression images of the same person").

Negative slots are assigned to expressions first: the other expressions the subject has
(in random order), then the ones it lacks, cycled when N exceeds them, so that with
N = C - 1 (the paper's 6 for CK+ and SFEW, 5 for MMI, 3 for Multi-PIE) each other
expression gets one slot. A slot is filled, in this order of preference, from
(0) the subject's own images of that expression; (1) images of that expression of the
identities of the tuple's positives (§5.2: "when the query example lacks some expression
images from the same subject, the corresponding expression images sharing the same ID
with any other positive examples are used"); (2) any image of that expression (our
fallback when (1) is empty as well; counted in :attr:`TupleSampler.level_counts`).
Within a level unused images come first.

Batch layout (what the model's ``train_step`` expects): ``queries_per_batch`` tuples of
``1 + P + N`` images each, tuple-major: ``[query, P positives, N negatives]`` for tuple 0,
then tuple 1, ... The batch dict is the one of :mod:`fermtl_tf.data.pipeline` (decoded,
augmented, normalised images and every label) plus ``tuple_role`` int32 (0 query,
1 positive, 2 negative).

Determinism: the tuples of epoch k are a function of ``(seed, k)`` only
(``numpy.random.default_rng([seed, k])``), and the augmentations come from the
pipeline's stateless seeds, so two datasets built alike give the same batches.
"""

import itertools

import numpy as np
import tensorflow as tf

from fermtl_tf.data import pipeline, schema

#: ``tuple_role`` values.
QUERY, POSITIVE, NEGATIVE = 0, 1, 2

#: Negative sources (see the module docstring), as counted in ``level_counts``.
NEGATIVE_LEVELS = ("same_subject", "positive_identities", "any_subject")

#: Parsed features kept in memory for the sampler (metadata strings are dropped).
_DROPPED_FEATURES = ("image_id", "sequence_id", "source", "split")


def _group(keys):
    """``{key: indices}`` for an int array (indices ascending)."""
    order = np.argsort(keys, kind="stable")
    values, starts = np.unique(keys[order], return_index=True)
    return {int(v): part for v, part in zip(values, np.split(order, starts[1:]), strict=True)}


def _pick_unused(pool, used, rng, tries=8):
    """A random element of ``pool`` not in ``used`` if there is one, else any element."""
    for _ in range(tries):
        pick = int(pool[rng.integers(len(pool))])
        if pick not in used:
            return pick
    unused = [int(i) for i in pool if int(i) not in used]
    return int(rng.choice(unused)) if unused else int(pool[rng.integers(len(pool))])


class TupleSampler:
    """Draws identity-aware tuples of record indices (pure numpy, no TensorFlow).

    Args:
        identity: int ``[R]`` subject of each record (every one >= 0).
        expression: int ``[R]`` expression class of each record.
        positives_per_query: P, positives drawn besides the query.
        negatives_per_query: N.
        queries_per_batch: tuples per batch (12 in §5.2).
        seed: integer seed.
    """

    def __init__(self, identity, expression, positives_per_query, negatives_per_query,
                 queries_per_batch=12, seed=0):
        self.identity = np.asarray(identity, np.int64)
        self.expression = np.asarray(expression, np.int64)
        if self.identity.shape != self.expression.shape or self.identity.ndim != 1:
            raise ValueError("identity and expression must be 1-D arrays of the same length")
        if len(self.identity) == 0:
            raise ValueError("no expression-labelled records to sample tuples from")
        if (self.identity < 0).any():
            raise ValueError("every record needs an identity (>= 0) for identity-aware sampling")
        if positives_per_query < 0 or negatives_per_query < 1 or queries_per_batch < 1:
            raise ValueError("need positives_per_query >= 0, negatives_per_query >= 1 and "
                             "queries_per_batch >= 1")
        self.positives_per_query = int(positives_per_query)
        self.negatives_per_query = int(negatives_per_query)
        self.queries_per_batch = int(queries_per_batch)
        self.seed = int(seed)
        self.by_expression = _group(self.expression)
        if len(self.by_expression) < 2:
            raise ValueError("negatives need at least two expression classes; found "
                             f"{sorted(self.by_expression)}")
        pair = self.identity * (int(self.expression.max()) + 1) + self.expression
        self._by_pair = _group(pair)
        self._stride = int(self.expression.max()) + 1
        self.level_counts = dict.fromkeys(NEGATIVE_LEVELS, 0)

    @property
    def tuple_size(self):
        return 1 + self.positives_per_query + self.negatives_per_query

    @property
    def steps_per_epoch(self):
        return -(-len(self.identity) // self.queries_per_batch)

    def roles(self):
        """``tuple_role`` of one batch, ``[queries_per_batch * tuple_size]``."""
        one = [QUERY] + [POSITIVE] * self.positives_per_query + [NEGATIVE] * self.negatives_per_query
        return np.tile(np.array(one, np.int32), self.queries_per_batch)

    def _images_of(self, identity, expression):
        return self._by_pair.get(int(identity) * self._stride + int(expression), np.empty(0, int))

    def _positives(self, query, rng):
        """P other images of the query's expression, from other subjects when there are enough."""
        count = self.positives_per_query
        if count == 0:
            return np.empty(0, np.int64)
        pool = self.by_expression[int(self.expression[query])]
        subject = self.identity[query]
        draws = pool[rng.integers(len(pool), size=4 * count + 8)]
        draws = draws[self.identity[draws] != subject]
        _, first = np.unique(draws, return_index=True)
        chosen = draws[np.sort(first)][:count]
        if len(chosen) == count:
            return chosen
        others = pool[self.identity[pool] != subject]
        if len(others) < count:  # too few other subjects: add the subject's other images
            own = pool[(self.identity[pool] == subject) & (pool != query)]
            others = np.concatenate([others, own])
        if len(others) == 0:
            return np.full(count, query, np.int64)
        return rng.choice(others, size=count, replace=len(others) < count)

    def _slot_expressions(self, query, rng):
        """Expressions of the N negative slots: the subject's other expressions first."""
        subject, own = self.identity[query], self.expression[query]
        others = [e for e in self.by_expression if e != own]
        has = [e for e in others if len(self._images_of(subject, e))]
        lacks = [e for e in others if not len(self._images_of(subject, e))]
        order = list(rng.permutation(has)) + list(rng.permutation(lacks))
        return [order[i % len(order)] for i in range(self.negatives_per_query)]

    def _negatives(self, query, positives, rng):
        """N negatives and the level (0, 1, 2) each came from."""
        subject = self.identity[query]
        positive_ids = np.unique(self.identity[positives])
        used, chosen, levels = set(), [], []
        for expression in self._slot_expressions(query, rng):
            levels_pools = (
                self._images_of(subject, expression),
                np.concatenate([self._images_of(i, expression) for i in positive_ids]
                               or [np.empty(0, int)]),
                self.by_expression[expression],
            )
            level, pool = next((lv, p) for lv, p in enumerate(levels_pools) if len(p))
            pick = _pick_unused(pool, used, rng)
            used.add(pick)
            chosen.append(pick)
            levels.append(level)
        return np.array(chosen, np.int64), np.array(levels, np.int64)

    def sample_tuple(self, query, rng):
        """``(indices [1 + P + N], negative levels [N])`` for one query record."""
        positives = self._positives(query, rng)
        negatives, levels = self._negatives(query, positives, rng)
        return np.concatenate([[query], positives, negatives]).astype(np.int64), levels

    def epoch(self, epoch):
        """Yield ``(indices [X, 1 + P + N], levels [X, N])`` batch by batch for one epoch.

        Every record is a query once; the last batch is completed with queries drawn
        from a second permutation so every batch has X tuples.
        """
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(len(self.identity))
        padding = self.steps_per_epoch * self.queries_per_batch - len(order)
        queries = np.concatenate([order, rng.permutation(len(order))[:padding]])
        for batch in queries.reshape(-1, self.queries_per_batch):
            tuples, levels = zip(*(self.sample_tuple(q, rng) for q in batch), strict=True)
            levels = np.stack(levels)
            for level, name in enumerate(NEGATIVE_LEVELS):
                self.level_counts[name] += int((levels == level).sum())
            yield np.stack(tuples), levels


def missing_identity_message(folder, split, missing, total):
    return (
        f"{folder}: {missing} of {total} expression-labelled records (split {split!r}) have no "
        "identity label (identity = -1). Identity-aware tuple sampling (Liu et al. 2017, "
        "§5.2) draws each query's negatives from the same subject, so every image needs "
        "one. For SFEW, prepare the folder again with `fermtl-prep sfew --identities "
        "FILE.csv` (columns image,identity; data_prep/sfew.md); for another dataset "
        "without subject IDs, give them in the 'identity' column of a manifest CSV "
        "(data_prep/README.md, 'Manifest CSV') and use the 'manifest' source."
    )


def _fold_tuple(folds):
    """None, or the folds (an int or a list of ints) as a tuple."""
    if folds is None:
        return None
    return (int(folds),) if isinstance(folds, int) else tuple(int(f) for f in folds)


def load_records(folder, split="train", folds=None, exclude_folds=None):
    """The expression-labelled records of ``folder`` as ``{feature: numpy array}``.

    Images stay encoded. Uses the reader's record selection
    (``pipeline._requested_splits`` and ``pipeline._parsed_records``), so splits and
    folds mean what they mean in ``make_dataset``. Raises a ValueError naming the folder when some record has no
    identity (see :func:`missing_identity_message`).
    """
    manifest = pipeline.load_manifest(folder)
    splits = pipeline._requested_splits(split, manifest, folder)
    records = pipeline._parsed_records(folder, manifest, splits, folds=_fold_tuple(folds),
                                       exclude_folds=_fold_tuple(exclude_folds))
    parts = {}
    for batch in records.batch(4096).as_numpy_iterator():
        for key, value in batch.items():
            if key not in _DROPPED_FEATURES:
                parts.setdefault(key, []).append(value)
    if not parts:
        raise ValueError(f"{folder}: no records of split {split!r}")
    arrays = {key: np.concatenate(value) for key, value in parts.items()}
    labelled = arrays["expression_mask"] > 0
    arrays = {key: value[labelled] for key, value in arrays.items()}
    missing = int((arrays["identity"] < 0).sum())
    if missing:
        raise ValueError(missing_identity_message(folder, split, missing, int(labelled.sum())))
    return arrays, manifest


def make_tuple_dataset(folder, split="train", queries_per_batch=12, positives_per_query=5,
                       negatives_per_query=6, image_size=(48, 48), augment=None,
                       normalization="per_image", seed=0, folds=None, exclude_folds=None,
                       first_epoch=0, preprocess=None):
    """Batches of identity-aware tuples from one prepared folder, for ``model.fit``.

    Each batch holds ``queries_per_batch * (1 + positives_per_query + negatives_per_query)``
    images in the layout of the module docstring (§5.2: 12 x (6 + 6) = 144 images when
    the query counts among M = 6 positives, i.e. ``positives_per_query=5``). Keras
    iterates the dataset once per epoch; each iteration draws new tuples (epoch k uses
    the seed ``(seed, k)``) and new augmentations.

    Args:
        folder, split, folds, exclude_folds: which records (as in
            :func:`fermtl_tf.data.pipeline.make_dataset`); records without an expression
            label are left out, records without an identity are an error.
        queries_per_batch, positives_per_query, negatives_per_query: X, P and N.
        image_size, augment, normalization, preprocess: as in ``make_dataset``
            (training mode).
        seed: integer seed of the tuples and the augmentations.
        first_epoch: the epoch the first iteration draws (a resumed run starts at its
            next epoch, so it sees the tuples an uninterrupted run would).
    """
    arrays, manifest = load_records(folder, split, folds, exclude_folds)
    sampler = TupleSampler(arrays["identity"], arrays["expression"], positives_per_query,
                           negatives_per_query, queries_per_batch, seed)
    batch_size = queries_per_batch * sampler.tuple_size
    spec = schema.parse_spec(manifest["num_aus"], manifest["num_attributes"])
    signature = {key: tf.TensorSpec(feature.shape, feature.dtype)
                 for key, feature in spec.items() if key in arrays}
    epochs = itertools.count(first_epoch)

    def elements():  # one record at a time: unbatch() crashes on the [B, 0] AU features
        for indices, _ in sampler.epoch(next(epochs)):
            for index in indices.reshape(-1):
                yield {key: arrays[key][index] for key in signature}

    records = tf.data.Dataset.from_generator(elements, output_signature=signature)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    element_fn = pipeline._make_element_fn(
        manifest, tuple(int(v) for v in image_size), pipeline._as_augment_config(augment),
        training=True, keep_metadata=False)
    roles = tf.constant(sampler.roles())
    dataset = (tf.data.Dataset.zip(records, seeds)
               .map(element_fn, num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size, drop_remainder=True)
               .map(lambda batch: {**batch, "tuple_role": roles,
                                   "image": pipeline.model_inputs(batch["image"], normalization,
                                                                  preprocess)}))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(sampler.steps_per_epoch))
    options = tf.data.Options()
    options.deterministic = True
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
