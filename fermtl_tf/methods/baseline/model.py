"""Single-task baselines: a ResNet backbone and one head (Hu et al. 2018, Table 4 "RN").

* ``task="expression"``: a fully connected layer to ``expression_logits`` [B, C]
  (softmax cross-entropy; the exporter adds ``expression_probs``).
* ``task="landmarks"``: a fully connected layer to ``landmarks`` [B, 68, 2], trained with
  l1 on coordinates normalised to (0, 1) (Hu et al. 2018, §2.4, §4.1). The head is
  *linear*, not a sigmoid: augmentation (rotation, scale, shift) can push true points
  slightly outside the crop, which a sigmoid could only reach with saturated logits,
  and a linear FC is the paper's regressor. Its bias starts at 0.5 (the crop centre).

Heads run in float32 under mixed precision, as Keras recommends for final layers.
"""

import keras

from fermtl_tf.backbones.resnet import build_resnet
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.training.multitask import MultiTaskModel

BASELINE_TASKS = ("expression", "landmarks")


def task_head(task, features, num_classes):
    """The output tensor(s) of one task head on pooled ``features``: {output name: tensor}."""
    if task == "expression":
        logits = keras.layers.Dense(num_classes, dtype="float32", name="expression_logits")(
            features)
        return {"expression_logits": logits}
    if task == "landmarks":
        coordinates = keras.layers.Dense(
            2 * NUM_LANDMARKS, dtype="float32", bias_initializer=keras.initializers.Constant(0.5),
            name="landmarks_dense",
        )(features)
        points = keras.layers.Reshape((NUM_LANDMARKS, 2), dtype="float32", name="landmarks")(
            coordinates)
        return {"landmarks": points}
    raise ValueError(f"baseline task must be one of {BASELINE_TASKS}, got {task!r}")


@keras.saving.register_keras_serializable(package="fermtl_tf")
class BaselineModel(MultiTaskModel):
    """ResNet-18/34 + one task head, trained by :class:`MultiTaskModel`'s ``train_step``.

    Args:
        task: ``"expression"`` or ``"landmarks"``.
        num_classes: expression classes (ignored for landmarks).
        depth, width, stem, sync_batch_norm: see
            :func:`fermtl_tf.backbones.resnet.build_resnet`.
        input_size: side of the square input images (96 in Hu et al. 2018, §4.1).
        task_weight: the task's loss weight (a single task only rescales its loss).

    Example:
        >>> model = BaselineModel(task="expression", num_classes=7, depth=18)
        >>> model(images)["expression_logits"].shape
        TensorShape([B, 7])
    """

    def __init__(self, task="expression", num_classes=7, depth=18, width=64, input_size=96,
                 stem="imagenet", sync_batch_norm=False, task_weight=1.0, **kwargs):
        if task not in BASELINE_TASKS:
            raise ValueError(f"baseline task must be one of {BASELINE_TASKS}, got {task!r}")
        backbone = build_resnet(depth=depth, width=width,
                                input_shape=(input_size, input_size, 3), stem=stem,
                                sync_batch_norm=sync_batch_norm)
        images = keras.Input(shape=(input_size, input_size, 3), name="image")
        outputs = task_head(task, backbone(images), num_classes)
        super().__init__(inputs=images, outputs=outputs, task_weights={task: task_weight},
                         **kwargs)
        self.backbone = backbone
        self.task = task
        self.num_classes = int(num_classes)
        self.depth = int(depth)
        self.width = int(width)
        self.input_size = int(input_size)
        self.stem = stem
        self.sync_batch_norm = bool(sync_batch_norm)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "task": self.task,
            "num_classes": self.num_classes,
            "depth": self.depth,
            "width": self.width,
            "input_size": self.input_size,
            "stem": self.stem,
            "sync_batch_norm": self.sync_batch_norm,
            "task_weight": self.task_weights[self.task],
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
