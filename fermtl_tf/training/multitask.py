"""``MultiTaskModel``: a Keras model whose ``fit`` sums a dict of named, masked losses.

Every method in the package is a subclass: it builds its layers (sharing axis), may add
named losses in :meth:`MultiTaskModel.compute_task_losses` (coupling axis) and sets the
weights of the named losses (weighting axis). ``model.fit`` then runs it and logs
``loss`` (the weighted total) and one ``<name>_loss`` per named loss, plus per-task
metrics (``expression_accuracy``, ``landmarks_error``, ``au_accuracy``).

Data: ``fit`` consumes the batch dicts of ``fermtl_tf/data/pipeline.py`` (see
docs/ARCHITECTURE.md, "Batch dict"), or ``{source: batch dict}`` from the multi-source
pipeline; :meth:`MultiTaskModel.prepare_batch` concatenates the sources along the batch
axis (a label key missing from a source is filled with zeros, its mask with 0), so one
forward pass serves every source and each task's masked mean runs over the union.

Distribution (tested with 2 logical CPU devices): Keras' TF optimizer sums gradients
over replicas, so each replica's loss must be its *share* of the global loss. The masked
losses divide by the global mask count (``fermtl_tf/losses/masked.py``); regularisation
losses, identical on every replica, are divided by the number of replicas. With
synchronised batch norm (``sync_batch_norm=True`` in the backbones) an N-replica step
then equals a one-device step on the same global batch; with per-replica batch norm it
differs only through the batch statistics.

Mixed precision: the loss is scaled with ``self.optimizer.scale_loss`` as Keras' own
``train_step`` does (Keras wraps the optimizer in a ``LossScaleOptimizer`` under
``mixed_float16``), and all losses are computed in float32.
"""

import dataclasses

import keras
import tensorflow as tf

from fermtl_tf.losses.masked import (
    MaskedBinaryCrossEntropy,
    MaskedL1,
    MaskedSoftmaxCrossEntropy,
)


@dataclasses.dataclass(frozen=True)
class Task:
    """How a task is supervised: the model output, batch label and mask, and its loss."""

    output: str
    label: str
    mask: str
    loss: type


#: The supervised tasks every model understands, keyed by task (= loss) name.
TASKS = {
    "expression": Task("expression_logits", "expression", "expression_mask",
                       MaskedSoftmaxCrossEntropy),
    "landmarks": Task("landmarks", "landmarks", "landmarks_mask", MaskedL1),
    "au": Task("au_logits", "au", "au_mask", MaskedBinaryCrossEntropy),
}


def num_replicas():
    """Replicas in sync in the current ``tf.distribute`` strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def merge_sources(batches):
    """Concatenate ``{source: batch dict}`` into one batch dict along the batch axis.

    A key absent from some source is filled with zeros there (so its labels count as
    missing, mask 0). Per-sample shapes must agree across sources; a mismatch (e.g.
    datasets with different AU lists) is an error naming the key and the sources.
    """
    names = list(batches)
    keys = sorted(set().union(*(batches[name].keys() for name in names)))
    merged = {}
    for key in keys:
        reference = next(batches[name][key] for name in names if key in batches[name])
        parts = []
        for name in names:
            batch = batches[name]
            if key in batch:
                value = batch[key]
                if not value.shape[1:].is_compatible_with(reference.shape[1:]):
                    raise ValueError(
                        f"multi-source batch: {key!r} has per-sample shape {value.shape[1:]} "
                        f"in source {name!r} but {reference.shape[1:]} in another source"
                    )
            else:
                size = tf.shape(batch["image"])[:1]
                value = tf.zeros(tf.concat([size, tf.shape(reference)[1:]], 0), reference.dtype)
            parts.append(value)
        merged[key] = tf.concat(parts, axis=0)
    return merged


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MultiTaskModel(keras.Model):
    """Keras model with a multi-task ``train_step``: total = sum_k w_k L_k + regularisers.

    Build it like a functional model (``MultiTaskModel(inputs, outputs_dict,
    task_weights=...)``) or subclass it and call ``super().__init__(inputs=...,
    outputs=..., task_weights=...)``. The model maps a batch of normalised images to a
    dict of named outputs (``expression_logits`` [B, C], ``landmarks`` [B, 68, 2],
    ``au_logits`` [B, K], ...).

    Args:
        task_weights: ``{loss name: weight}``. Names in :data:`TASKS` switch on that
            task's masked loss and metrics; subclasses adding further named losses in
            :meth:`compute_task_losses` give their weights here too.

    Example:
        >>> x = keras.Input((8,))
        >>> model = MultiTaskModel(x, {"expression_logits": keras.layers.Dense(3)(x)},
        ...                        task_weights={"expression": 1.0})
        >>> model.compile(optimizer="sgd")
        >>> model.fit(dataset_of_batch_dicts, epochs=1)
    """

    def __init__(self, *args, task_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_weights = {name: float(w) for name, w in (task_weights or {}).items()}
        self.tasks = {name: TASKS[name] for name in self.task_weights if name in TASKS}
        self.task_loss_fns = {name: task.loss(name=f"{name}_loss")
                              for name, task in self.tasks.items()}
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.loss_trackers = {name: keras.metrics.Mean(name=f"{name}_loss")
                              for name in self.task_weights}
        self.task_metrics = {name: keras.metrics.Mean(name=name)
                             for name in self._task_metric_names()}

    def _task_metric_names(self):
        names = {"expression": "expression_accuracy", "landmarks": "landmarks_error",
                 "au": "au_accuracy"}
        return [names[task] for task in self.tasks]

    @property
    def metrics(self):
        """Trackers reset by Keras at each epoch (the documented custom-step pattern)."""
        return [self.total_loss_tracker, *self.loss_trackers.values(),
                *self.task_metrics.values()]

    # --- the hooks a method may override -----------------------------------------

    def prepare_batch(self, data):
        """One batch dict from what the dataset yields (multi-source dicts are merged)."""
        if "image" in data:
            return data
        return merge_sources(data)

    def training_labels(self, batch):
        """Labels used for training only (e.g. co-annotation adds some); default: as given."""
        return batch

    def forward(self, batch, training):
        """The outputs dict for a prepared batch; default: the model on ``batch["image"]``."""
        return self(batch["image"], training=training)

    def compute_task_losses(self, batch, outputs):
        """``{loss name: scalar}``: each task's masked mean (replica share, see module)."""
        losses = {}
        for name, task in self.tasks.items():
            for key in (task.label, task.mask):
                if key not in batch:
                    raise KeyError(f"task {name!r} needs batch key {key!r}; "
                                   f"batch has {sorted(batch)}")
            losses[name] = self.task_loss_fns[name](
                batch[task.label], outputs[task.output], sample_weight=batch[task.mask]
            )
        return losses

    def combine_losses(self, losses):
        """Weighted sum of the named losses plus the model's regularisation losses."""
        missing = sorted(set(losses) - set(self.task_weights))
        if missing:
            raise KeyError(f"no weight for loss(es) {missing}; task_weights has "
                           f"{sorted(self.task_weights)}")
        total = tf.add_n([self.task_weights[name] * tf.cast(value, tf.float32)
                          for name, value in losses.items()])
        if self.losses:
            regularisation = tf.add_n([tf.cast(r, tf.float32) for r in self.losses])
            total += regularisation / num_replicas()
        return total

    # --- Keras steps ----------------------------------------------------------------

    def train_step(self, data):
        batch = self.training_labels(self.prepare_batch(data))
        with tf.GradientTape() as tape:
            outputs = self.forward(batch, training=True)
            losses = self.compute_task_losses(batch, outputs)
            total = self.combine_losses(losses)
            scaled = self.optimizer.scale_loss(total)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._update_metrics(batch, outputs, losses, total)

    def test_step(self, data):
        batch = self.prepare_batch(data)
        outputs = self.forward(batch, training=False)
        losses = self.compute_task_losses(batch, outputs)
        return self._update_metrics(batch, outputs, losses, self.combine_losses(losses))

    def predict_step(self, data):
        if isinstance(data, dict):
            return self.forward(self.prepare_batch(data), training=False)
        return self(data, training=False)

    # --- logging ----------------------------------------------------------------------

    def _update_metrics(self, batch, outputs, losses, total):
        """Update trackers; each replica logs N x its share so replicas average to the whole."""
        replicas = float(num_replicas())
        self.total_loss_tracker.update_state(total * replicas)
        for name, value in losses.items():
            self.loss_trackers[name].update_state(tf.cast(value, tf.float32) * replicas)
        if "expression" in self.tasks:
            predicted = tf.argmax(outputs["expression_logits"], axis=-1, output_type=tf.int32)
            correct = tf.cast(predicted == tf.cast(batch["expression"], tf.int32), tf.float32)
            self.task_metrics["expression_accuracy"].update_state(
                correct, sample_weight=batch["expression_mask"])
        if "landmarks" in self.tasks:
            difference = tf.cast(outputs["landmarks"], tf.float32) - batch["landmarks"]
            point_error = tf.reduce_mean(tf.norm(difference, axis=-1), axis=-1)
            self.task_metrics["landmarks_error"].update_state(
                point_error, sample_weight=batch["landmarks_mask"])
        if "au" in self.tasks:
            predicted = tf.cast(outputs["au_logits"] > 0, tf.float32)
            correct = tf.cast(predicted == tf.cast(batch["au"] > 0.5, tf.float32), tf.float32)
            self.task_metrics["au_accuracy"].update_state(correct, sample_weight=batch["au_mask"])
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self):
        config = super().get_config()
        config["task_weights"] = dict(self.task_weights)
        return config
