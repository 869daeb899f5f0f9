"""``MultiTaskSteps``: the multi-task ``train_step``/``test_step`` as a mixin for any Keras model.

A method composes it with ``keras.Model`` -- functional (``MultiTaskModel`` below in
``multitask.py``) or subclassed (``class MyModel(MultiTaskSteps, keras.Model)``) -- and
calls :meth:`MultiTaskSteps.init_multitask` after ``keras.Model.__init__``. A plain
mixin rather than a base class: Keras 3 rewrites the bases of a ``keras.Model`` subclass
to ``Functional`` once a functional instance of it exists in the process
(``keras.src.models.model.inject_functional_model_class``), after which a subclassed
sibling sharing that base could no longer be built; the mixin is not a ``keras.Model``,
so it is never rewritten.

One step (every hook may be overridden; the steps themselves need not be)::

    prepare_batch (merge sources) -> training_labels (e.g. co-annotation) -> forward
      -> compute_task_losses ({name: PerSample | scalar}: the task table's per-sample
         masked losses, plus whatever the coupling axis adds)
      -> sample_scales ({name: [B]} per-sample factors; default none)
      -> combine_losses (the Weighting object: lambdas, ramps; + regularisers)
      -> one optimiser step.

``model.fit`` logs ``loss`` (the weighted total), one ``<name>_loss`` per named loss and
the task table's metrics (``expression_accuracy``, ``landmarks_nme`` — the inter-pupil NME
in percent, Hu et al. 2018 §4.1 —, ``au_accuracy``).

Data: ``fit`` consumes the batch dicts of ``fermtl_tf/data/pipeline.py`` (see
docs/ARCHITECTURE.md, "Batch dict"), or ``{source: batch dict}`` from the multi-source
pipeline; :meth:`MultiTaskSteps.prepare_batch` concatenates the sources along the batch
axis (a label key missing from a source is filled with zeros, its mask with 0), so one
forward pass serves every source and each task's masked mean runs over the union.

Distribution (tested with 2 logical CPU devices): Keras' TF optimizer sums gradients
over replicas, so each replica's loss must be its *share* of the global loss. The
per-sample losses are reduced with the global mask count (``fermtl_tf/losses/masked.py``);
regularisation losses, identical on every replica, are divided by the number of
replicas. With synchronised batch norm (``sync_batch_norm=True`` in the backbones) an
N-replica step then equals a one-device step on the same global batch; with per-replica
batch norm it differs only through the batch statistics.

Mixed precision: the loss is scaled with ``self.optimizer.scale_loss`` as Keras' own
``train_step`` does (Keras wraps the optimizer in a ``LossScaleOptimizer`` under
``mixed_float16``), and all losses are computed in float32.
"""

import keras
import tensorflow as tf

from fermtl_tf.metrics.landmarks import nme_per_image
from fermtl_tf.training.tasks import TASKS, task_loss
from fermtl_tf.training.weighting import PerSample, Weighting, reduce_loss


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


def label_mask(batch, task):
    """The presence mask of ``task`` (a TaskSpec) in ``batch``.

    Identity labels carry no mask key: an identity is present where it is >= 0.
    """
    if task.mask in batch:
        return batch[task.mask]
    if task.name == "identity":
        return tf.cast(batch["identity"] >= 0, tf.float32)
    raise KeyError(f"task {task.name!r} needs batch key {task.mask!r}; batch has {sorted(batch)}")


class MultiTaskSteps:
    """Multi-task ``train_step``/``test_step``/``predict_step`` for a ``keras.Model``.

    Call :meth:`init_multitask` in the model's ``__init__`` after ``keras.Model``'s.

    Example:
        >>> class Net(MultiTaskSteps, keras.Model):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.head = keras.layers.Dense(3)
        ...         self.init_multitask(task_weights={"expression": 1.0})
        ...     def call(self, images):
        ...         return {"expression_logits": self.head(images)}
    """

    def init_multitask(self, task_weights=None, weighting=None):
        """Set up losses and trackers for the named losses of ``task_weights``/``weighting``.

        Names that are rows of the task table (with a default loss) switch on that task's
        per-sample masked loss and its metric; other names (coupling losses) are the
        method's own, computed in its ``compute_task_losses``.
        """
        self.weighting = weighting or Weighting(task_weights)
        names = self.weighting.names()
        self.tasks = {name: TASKS[name] for name in names
                      if name in TASKS and TASKS[name].loss is not None}
        self.task_loss_fns = {name: task_loss(name) for name in self.tasks}
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.loss_trackers = {name: keras.metrics.Mean(name=f"{name}_loss") for name in names}
        self.task_metrics = {TASKS[name].metric: keras.metrics.Mean(name=TASKS[name].metric)
                             for name in self.tasks if TASKS[name].metric}

    @property
    def task_weights(self):
        """``{loss name: constant lambda}`` (ramped lambdas report their start)."""
        ramps = {name: start for name, (start, _) in self.weighting.ramps.items()}
        return {**ramps, **self.weighting.weights}

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
        """``{loss name: PerSample | scalar}``: each table task's per-sample masked loss."""
        losses = {}
        for name, task in self.tasks.items():
            if task.label not in batch:
                raise KeyError(f"task {name!r} needs batch key {task.label!r}; "
                               f"batch has {sorted(batch)}")
            losses[name] = PerSample(*self.task_loss_fns[name].per_sample(
                batch[task.label], outputs[task.output], label_mask(batch, task)))
        return losses

    def sample_scales(self, batch, outputs):
        """``{loss name: [B]}`` per-sample factors applied before reduction; default none."""
        return None

    def combine_losses(self, losses, sample_scales=None):
        """Weighted sum of the named losses plus the model's regularisation losses."""
        missing = sorted(set(losses) - set(self.weighting.names()))
        if missing:
            raise KeyError(f"no weight for loss(es) {missing}; weights are given for "
                           f"{sorted(self.weighting.names())}")
        step = self.optimizer.iterations if self.weighting.ramps else None
        total = self.weighting.combine(losses, step, sample_scales)
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
            total = self.combine_losses(losses, self.sample_scales(batch, outputs))
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
            self.loss_trackers[name].update_state(reduce_loss(value) * replicas)
        if "expression" in self.tasks:
            predicted = tf.argmax(outputs["expression_logits"], axis=-1, output_type=tf.int32)
            correct = tf.cast(predicted == tf.cast(batch["expression"], tf.int32), tf.float32)
            self.task_metrics["expression_accuracy"].update_state(
                correct, sample_weight=batch["expression_mask"])
        if "landmarks" in self.tasks:
            self.task_metrics["landmarks_nme"].update_state(
                nme_per_image(batch["landmarks"], outputs["landmarks"], "inter_pupil"),
                sample_weight=batch["landmarks_mask"])
        if "au" in self.tasks:
            predicted = tf.cast(outputs["au_logits"] > 0, tf.float32)
            correct = tf.cast(predicted == tf.cast(batch["au"] > 0.5, tf.float32), tf.float32)
            self.task_metrics["au_accuracy"].update_state(correct, sample_weight=batch["au_mask"])
        return {metric.name: metric.result() for metric in self.metrics}
