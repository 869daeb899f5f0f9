"""Builder of the baseline from an experiment config."""

from fermtl_tf.errors import ConfigError
from fermtl_tf.methods.baseline.model import BaselineModel


def build_model(config, data):
    """The single-task ResNet for ``config`` (one task; square images)."""
    (task, options), = config.tasks.items()
    height, width = config.data.image_size
    if height != width:
        raise ConfigError(f"data.image_size: the ResNet baseline needs square images, "
                          f"got {list(config.data.image_size)}")
    backbone = config.backbone
    return BaselineModel(
        task=task, num_classes=getattr(options, "num_classes", None) or 7,
        depth=backbone.depth, width=backbone.width, input_size=height, stem=backbone.stem,
        sync_batch_norm=backbone.sync_batch_norm, task_weight=config.task_weight(task),
        name=f"baseline_{task}_resnet{backbone.depth}")
