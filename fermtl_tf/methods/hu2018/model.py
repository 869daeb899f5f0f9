"""Hu et al. 2018 (ECCV): stacked multi-task ResNet with trace-norm sharing and ADA.

One model class covers every column of Table 4 (single task, LAF/Tucker/TT soft sharing,
hard sharing RN(k), cross-stitch; each with or without ADA) through the options of
``fermtl_tf.methods.hu2018.stacked_resnet.build_stacked_resnet``. Two tasks, in this order:

* task 0, ``expression``: softmax cross-entropy on the expression dataset (LSEMSW);
* task 1, ``landmarks``: l1 (or l2, Table 6) regression of 68 points normalised to (0, 1)
  on a disjoint landmark dataset (300-W), §2.4, §4.1.

Training data is the multi-source batch ``{"expression": batch, "landmarks": batch}`` of
``make_multi_source_dataset`` (equal batch sizes, 256 each in §4.1). Task ``t``'s network
sees task ``t``'s images only: ``f_Θt(X_t)`` in Eq. 4. With cross-stitch units the task
streams are mixed image by image, so there both networks see the union of the two batches
(as in Misra et al., where the tasks share their inputs) and each loss uses its own rows.
A plain batch dict (one dataset with both labels) feeds the same images to both tasks.

Adversarial domain alignment (§2.3, Eq. 4): the pooled 512-d features of each task
network on its own images go through a ``GradientReversal`` layer into a dataset-identity
MLP (512-128-64-T, ReLU hidden units); its cross-entropy against the dataset index is
minimised by the MLP and, through the reversed gradient, maximised by the feature
extractors: ``max_Θ* min_Φ ℓ(g_Φ([f_Θ1*(X1) ... f_ΘT*(XT)]), y)``.

Serving: the model is a functional Keras model on plain images ``[B, H, W, 3]``: every
task network runs on the same images and it returns ``expression_logits`` (task 0's head)
and ``landmarks`` (task 1's head), so ``fermtl_tf.export.export_saved_model`` works
unchanged. Training runs the same layers on task-stacked images through
:meth:`Hu2018Model.forward_stacked` (``train_step``/``test_step`` differ from
``MultiTaskModel``'s only in that call). It is functional rather than subclassed because
Keras 3 rewrites the bases of a ``keras.Model`` subclass to ``Functional`` once any
functional instance of it (e.g. ``BaselineModel``) exists in the process
(``keras.src.models.model.inject_functional_model_class``), after which a subclassed-style
``MultiTaskModel`` can no longer be constructed.
"""

import keras
import tensorflow as tf

from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.layers import GradientReversal
from fermtl_tf.losses.masked import MaskedSoftmaxCrossEntropy
from fermtl_tf.methods.hu2018.config import TASK_ORDER
from fermtl_tf.methods.hu2018.stacked_resnet import (
    TaskSlice,
    TileTasks,
    build_stacked_resnet,
    main_path_conv_names,
)
from fermtl_tf.regularizers import TensorTraceNorm
from fermtl_tf.training.multitask import MultiTaskModel
from fermtl_tf.training.weighting import PerSample

LANDMARK_LOSSES = ("l1", "l2")


def _regularizer(trace_norm):
    """``TensorTraceNorm`` from the ``trace_norm`` options dict (None: no regulariser)."""
    if not trace_norm:
        return None
    options = {k: v for k, v in trace_norm.items() if k != "include_shortcuts"}
    return TensorTraceNorm(**options)


def average_over_layers(network, regularizer):
    """The reference normalisation's mean over the regularised layers: the TNRDMTL code
    regularises the mean over layers, so the one shared regulariser's strength is divided
    by the number of kernels it regularises (docs/FIDELITY.md, issue 12)."""
    layers = [layer for layer in network.layers
              if getattr(layer, "kernel_regularizer", None) is regularizer]
    regularizer.strength /= max(len(layers), 1)
    return len(layers)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class LandmarkUnwhitening(keras.layers.Layer):
    """Whitened landmark coordinates back to (0, 1) crop coordinates: ``z * scale + mean``.

    Hu et al. 2018 §4.1: "landmark coordinates are whitened following [43]". The head
    regresses whitened coordinates (the training mean shape subtracted, divided by one
    scale: the standard deviation of the centred coordinates); this layer is part of the
    graph, so predictions and the exported SavedModel give crop coordinates.
    """

    def __init__(self, mean, scale, **kwargs):
        super().__init__(**kwargs)
        self.mean = [[float(x), float(y)] for x, y in mean]
        self.scale = float(scale)

    def call(self, whitened):
        return whitened * self.scale + tf.constant(self.mean, whitened.dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "scale": self.scale}


@keras.saving.register_keras_serializable(package="fermtl_tf")
class Hu2018Model(MultiTaskModel):
    """Two stacked ResNets (expression, landmarks) with optional trace norm, RN(k), cross-stitch
    and ADA; ``fit`` on ``{"expression": batch, "landmarks": batch}``.

    Args:
        num_classes: expression classes (13 for LSEMSW).
        depth, width, input_size, stem: the ResNet (34, 64, 96, "imagenet" in the paper).
        trace_norm: None or a dict of ``TensorTraceNorm`` options (``method``, ``strength``,
            ``svd``, ``rank``, ``gammas``) plus ``include_shortcuts``.
        hard_shared_layers: k of RN(k) (0: no hard sharing).
        cross_stitch: CrossStitch units after the task-specific residual stages.
        ada: None or ``{"weight", "reversal_scale", "hidden_units"}`` (§2.3).
        landmarks_loss: "l1" (§2.4) or "l2" (Table 6's comparison).
        task_weights: ``{"expression": w, "landmarks": w}``; the ADA weight comes from ``ada``.
        implementation: ``StackedConv2D`` implementation.

    Example:
        >>> model = Hu2018Model(num_classes=13, depth=18, width=8, input_size=32,
        ...                     trace_norm={"method": "laf", "strength": 1e-3},
        ...                     ada={"weight": 1.0})
        >>> model(images)["expression_logits"].shape   # images: [B, 32, 32, 3]
        TensorShape([B, 13])
    """

    def __init__(self, num_classes=13, depth=34, width=64, input_size=96, stem="imagenet",
                 trace_norm=None, hard_shared_layers=0, cross_stitch=False, ada=None,
                 landmarks_loss="l1", task_weights=None, implementation="auto",
                 landmark_whitening=None, **kwargs):
        if landmarks_loss not in LANDMARK_LOSSES:
            raise ValueError(f"landmarks_loss must be one of {LANDMARK_LOSSES}, "
                             f"got {landmarks_loss!r}")
        weights = {task: 1.0 for task in TASK_ORDER}
        weights.update(task_weights or {})
        weights.pop("ada", None)
        if ada:
            ada = {"weight": 1.0, "reversal_scale": 1.0, "hidden_units": [128, 64], **ada}
            weights["ada"] = float(ada["weight"])
        num_tasks = len(TASK_ORDER)
        regularizer = _regularizer(trace_norm)
        network = build_stacked_resnet(
            num_tasks, int(depth), int(width), (int(input_size), int(input_size), 3),
            stem=stem, hard_shared_layers=int(hard_shared_layers),
            kernel_regularizer=regularizer,
            regularize_shortcuts=bool((trace_norm or {}).get("include_shortcuts")),
            cross_stitch=bool(cross_stitch), implementation=implementation)
        if regularizer is not None and regularizer.normalize == "reference":
            average_over_layers(network, regularizer)
        expression_head = keras.layers.Dense(int(num_classes), dtype="float32",
                                             name="expression_logits")
        whitening = dict(landmark_whitening or {"mean": [[0.0, 0.0]] * NUM_LANDMARKS,
                                                "scale": 1.0})
        landmarks_head = keras.layers.Dense(
            2 * NUM_LANDMARKS, dtype="float32",
            # the crop centre without whitening, the mean shape with it
            bias_initializer=keras.initializers.Constant(0.0 if landmark_whitening else 0.5),
            name="landmarks_dense")
        landmarks_shape = keras.Sequential(
            [keras.layers.Reshape((NUM_LANDMARKS, 2), dtype="float32"),
             LandmarkUnwhitening(**whitening, dtype="float32")], name="landmarks")
        images = keras.Input((int(input_size), int(input_size), 3), name="image")
        features = network(TileTasks(num_tasks, name="tile_tasks")(images))
        outputs = {
            "expression_logits": expression_head(TaskSlice(0, name="task0")(features)),
            "landmarks": landmarks_shape(landmarks_head(TaskSlice(1, name="task1")(features))),
        }
        super().__init__(inputs=images, outputs=outputs, task_weights=weights, **kwargs)
        self.network = network
        self.expression_head = expression_head
        self.landmarks_head = landmarks_head
        self.landmarks_shape = landmarks_shape
        self.landmark_whitening = landmark_whitening and whitening
        self.num_classes = int(num_classes)
        self.depth, self.width = int(depth), int(width)
        self.input_size, self.stem = int(input_size), stem
        self.trace_norm = dict(trace_norm) if trace_norm else None
        self.hard_shared_layers = int(hard_shared_layers)
        self.cross_stitch = bool(cross_stitch)
        self.ada = ada
        self.landmarks_loss = landmarks_loss
        self.implementation = implementation
        self.num_tasks = num_tasks
        feature_size = network.output_shape[-1]
        self.domain_loss = MaskedSoftmaxCrossEntropy(name="ada_loss")
        if self.ada:
            self.gradient_reversal = GradientReversal(float(ada["reversal_scale"]),
                                                      name="gradient_reversal")
            self.domain_classifier = keras.Sequential(
                [keras.layers.Dense(int(units), activation="relu", name=f"domain_hidden{i}")
                 for i, units in enumerate(ada["hidden_units"], start=1)]
                + [keras.layers.Dense(self.num_tasks, dtype="float32", name="domain_logits")],
                name="domain_classifier")
            self.gradient_reversal.build((None, feature_size))
            self.domain_classifier.build((None, feature_size))

    # --- forward --------------------------------------------------------------------

    def task_features(self, stacked_images, training=None):
        """Pooled features of each task network on its own images: a list of T [B, F].

        ``stacked_images`` is (T, N, H, W, 3); with cross-stitch N = T * B and task t's
        rows are the t-th chunk (see the module docstring), otherwise N = B.
        """
        features = self.network(stacked_images, training=training)
        if not self.cross_stitch:
            return [features[t] for t in range(self.num_tasks)]
        return [tf.split(features[t], self.num_tasks)[t] for t in range(self.num_tasks)]

    def _heads(self, expression_features, landmark_features):
        return {"expression_logits": self.expression_head(expression_features),
                "landmarks": self.landmarks_shape(self.landmarks_head(landmark_features))}

    def forward_stacked(self, stacked_images, training=None):
        """Outputs on task-stacked images (T, N, H, W, 3): each task on its own rows, plus
        ``domain_logits`` [T * B, T] with ADA (behind the gradient reversal layer)."""
        features = self.task_features(stacked_images, training=training)
        outputs = self._heads(features[0], features[1])
        if self.ada:
            pooled = tf.concat([tf.cast(f, tf.float32) for f in features], axis=0)
            outputs["domain_logits"] = self.domain_classifier(self.gradient_reversal(pooled))
        return outputs

    # --- MultiTaskModel hooks and steps ---------------------------------------------

    def forward(self, batch, training):
        """Training and evaluation run each task network on its own source's images."""
        return self.forward_stacked(batch["image"], training=training)

    def prepare_batch(self, data):
        """Stack the task sources to (T, N, H, W, 3) and gather each task's labels.

        Returns a batch dict: ``image`` (stacked), ``expression``/``expression_mask`` from
        the expression source, ``landmarks``/``landmarks_mask`` from the landmark source,
        ``dataset`` [T * B] (the dataset index of each row of the ADA classifier).
        """
        if "image" in data:
            sources = {task: data for task in TASK_ORDER}
        else:
            missing = [task for task in TASK_ORDER if task not in data]
            if missing:
                raise KeyError(f"Hu2018Model needs the multi-source batch to have sources "
                               f"{list(TASK_ORDER)} (name the data.train entries so); "
                               f"missing {missing}, got {sorted(data)}")
            sources = data
        images = [sources[task]["image"] for task in TASK_ORDER]
        sizes = {int(i.shape[0]) for i in images if i.shape[0] is not None}
        if len(sizes) > 1:
            raise ValueError(f"Hu2018Model needs equal batch sizes per task source, got "
                             f"{dict(zip(TASK_ORDER, (i.shape[0] for i in images), strict=True))}")
        if self.cross_stitch:
            union = tf.concat(images, axis=0)
            stacked = tf.stack([union] * self.num_tasks)
        else:
            stacked = tf.stack(images)
        expression, landmarks = sources["expression"], sources["landmarks"]
        dataset = tf.concat([tf.fill(tf.shape(image)[:1], t) for t, image in enumerate(images)],
                            axis=0)
        return {"image": stacked,
                "expression": expression["expression"],
                "expression_mask": expression["expression_mask"],
                "landmarks": landmarks["landmarks"],
                "landmarks_mask": landmarks["landmarks_mask"],
                "dataset": dataset}

    def compute_task_losses(self, batch, outputs):
        """Expression CE, landmark l1 (or l2) and, with ADA, the dataset-identity CE."""
        losses = super().compute_task_losses(batch, outputs)
        losses["landmarks"] = self.landmark_loss(batch, outputs)
        if self.ada:
            losses["ada"] = self.domain_loss(batch["dataset"], outputs["domain_logits"])
        return losses

    def landmark_loss(self, batch, outputs):
        """l1 (§2.4) or l2 (Table 6) per sample on whitened coordinates: the error in crop
        coordinates divided by the whitening scale (the mean shape cancels)."""
        scale = (self.landmark_whitening or {"scale": 1.0})["scale"]
        error = (tf.cast(outputs["landmarks"], tf.float32) - batch["landmarks"]) / scale
        error = tf.reshape(error, [tf.shape(error)[0], -1])
        per_sample = tf.reduce_mean(tf.abs(error) if self.landmarks_loss == "l1"
                                    else tf.square(error), axis=1)
        return PerSample(per_sample, batch["landmarks_mask"])

    # --- analysis and serialisation -------------------------------------------------

    def stacked_conv_layers(self):
        """Main-path conv layers holding a stacked (task-specific) kernel, in network order."""
        names = main_path_conv_names(self.depth)
        return [layer for name in names
                if (layer := self._layer_or_none(name)) is not None
                and layer.kernel.shape.rank == 5]

    def _layer_or_none(self, name):
        try:
            return self.network.get_layer(name)
        except ValueError:
            return None

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "depth": self.depth,
            "width": self.width,
            "input_size": self.input_size,
            "stem": self.stem,
            "trace_norm": self.trace_norm,
            "hard_shared_layers": self.hard_shared_layers,
            "cross_stitch": self.cross_stitch,
            "ada": self.ada,
            "landmarks_loss": self.landmarks_loss,
            "task_weights": {t: self.task_weights[t] for t in TASK_ORDER},
            "implementation": self.implementation,
            "landmark_whitening": self.landmark_whitening or None,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
