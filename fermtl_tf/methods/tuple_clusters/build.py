"""Builder of 2B(N+M)Softmax and its baselines from an experiment config, and the served model."""

import dataclasses

import keras

from fermtl_tf.methods.tuple_clusters.data import train_dataset as tuple_dataset
from fermtl_tf.methods.tuple_clusters.network import TupleClustersNet


def build_model(config, data):
    """The :class:`TupleClustersNet` for ``config.method`` (a ``TupleClustersMethod``).

    Reads ``config.method``, ``config.tasks["expression"].num_classes`` (else the size of
    ``data.expression_vocabulary``) and ``config.data.image_size``; the model is built
    on an RGB input of that size (the pipeline's images; it converts them to grey).
    """
    method = config.method
    expression = config.tasks.get("expression") if hasattr(config.tasks, "get") else None
    num_classes = (getattr(expression, "num_classes", None)
                   or len(getattr(data, "expression_vocabulary", None) or []) or 7)
    options = {field.name: getattr(method, field.name)
               for field in dataclasses.fields(method) if field.name not in ("name", "network",
                                                                              "queries_per_batch")}
    network = dataclasses.asdict(method.network)
    height, width = (int(v) for v in config.data.image_size)
    model = TupleClustersNet(num_classes=num_classes, image_size=(height, width), **options,
                             **network, name=f"tuple_clusters_{method.branches}_{method.metric_loss}")
    model.build((None, height, width, 3))
    return model


def serving_model(model):
    """The EC branch alone (§4: at test time only the convolution groups and the EC branch
    are used): RGB images ``[B, H, W, 3]`` -> ``{"expression_logits": [B, C]}``."""
    height, width = model.options["image_size"]
    images = keras.Input((height, width, 3), name="image")
    return keras.Model(images, {"expression_logits": model.classify(images)},
                       name=f"{model.name}_serving")


def train_dataset(config, first_epoch=0):
    """The training input: identity-aware tuple batches of the first training source,
    from epoch ``first_epoch`` on (a resumed run); None (the configured sources' batches)
    for softmax-only training (``metric_loss: none``, e.g. the FER2013 pre-training)."""
    if config.method.metric_loss == "none":
        return None
    source = config.data.train[0]
    return tuple_dataset(config.method, source.folder, split=source.split,
                         image_size=config.data.image_size, augment=source.augment,
                         normalization=config.data.normalization,
                         preprocess=config.data.preprocess, seed=config.seed,
                         folds=source.folds, exclude_folds=source.exclude_folds,
                         first_epoch=first_epoch)
