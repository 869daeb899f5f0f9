"""The training input of the method: identity-aware tuple batches from the method config."""

from fermtl_tf.data.tuple_sampling import make_tuple_dataset


def train_dataset(method, folder, **pipeline_kwargs):
    """:func:`~fermtl_tf.data.tuple_sampling.make_tuple_dataset` with X, P and N from ``method``.

    ``method`` is a ``TupleClustersMethod``; ``pipeline_kwargs`` are the reader's
    (``split``, ``image_size``, ``augment``, ``normalization``, ``seed``, ``folds``,
    ``exclude_folds``). P is ``num_positives - 1`` when the query counts among the M
    positives (§5.2's 12 x (6 + 6) images), else ``num_positives``.
    """
    return make_tuple_dataset(folder, queries_per_batch=method.queries_per_batch,
                              positives_per_query=method.positives_per_query,
                              negatives_per_query=method.num_negatives, **pipeline_kwargs)
