"""The two-branch FC network of Liu et al. 2017 (§4, Fig. 4) with its own train step.

Layout (``branches="2B"``)::

    image -> grey -> inception FER convolution groups (Mollahosseini et al.) -> 512
      EC branch: FC1 -> FC2 -> classifier -> expression_logits       (softmax, query only)
      ML branch: FC3 ; FC4 = P1'FC2 + P2'FC3 (Eq. 13) -> ML layer 2 -> embedding (metric loss)

``branches="1B"`` (the 1B baselines of §5.3) drops the ML branch: the metric loss acts on
FC2, "after the EC branch", beside the softmax. Every FC layer but the classifier and the
embedding is followed by a PReLU.

Training batches come from :func:`fermtl_tf.data.tuple_sampling.make_tuple_dataset`:
X tuples of ``1 + P + N`` images, tuple-major ``[query, P positives, N negatives]``.
The loss is ``softmax(query) + alpha * metric`` (§4: "the softmax loss will only be
calculated for the query example. The importance of two loss functions is balanced by
a weight alpha"); a plain batch dict (no ``tuple_role``) trains and evaluates the
softmax alone on every image (FER2013 pre-training, validation).

Distribution: each replica returns its share of the global loss (masked means with a
global denominator, regularisation divided by the number of replicas), since Keras sums
gradients over replicas.
"""

import keras
import tensorflow as tf

from fermtl_tf.backbones.inception_fer import build_inception_fer
from fermtl_tf.losses.masked import MaskedSoftmaxCrossEntropy, masked_mean
from fermtl_tf.losses.tuple_clusters import (
    AdaptiveTupleClusters,
    tuple_clusters_loss_per_tuple,
    tuplet_loss_per_tuple,
)

#: ITU-R BT.601 luma weights (``tf.image.rgb_to_grayscale``).
LUMA = (0.2989, 0.5870, 0.1140)


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TupleClustersNet(keras.Model):
    """Inception FER network + EC/ML branches, trained with softmax and a metric loss.

    Args:
        num_classes: expression classes.
        image_size: (height, width) of the input images (48x48 in §5.1).
        branches, metric_loss, threshold, reference_distance, margin, num_positives,
        num_negatives, query_in_positives, alpha, sign_a, sign_b, positive_label, rank:
            see :class:`~fermtl_tf.methods.tuple_clusters.config.TupleClustersMethod`.
        width, batch_norm, grayscale, ec_units, ml_units, connect_units, embedding_dim,
        dropout, weight_decay: see ``InceptionFERNetwork`` in the same module.

    ``model(images)`` returns ``{"expression_logits": [B, C], "embedding": [B, d]}``.
    """

    def __init__(self, num_classes, image_size=(48, 48), branches="2B", metric_loss="n_plus_m",
                 threshold="adaptive", reference_distance=2.0, margin=2.0, num_positives=6,
                 num_negatives=6, query_in_positives=True, alpha=1.0, sign_a=1, sign_b=-1,
                 positive_label=1, rank=None, width=1.0, batch_norm=False, grayscale=True,
                 ec_units=(4096, 1024), ml_units=1024, connect_units=1024, embedding_dim=256,
                 dropout=0.0, weight_decay=0.0, **kwargs):
        super().__init__(**kwargs)
        if branches not in ("1B", "2B"):
            raise ValueError(f"branches must be '1B' or '2B', got {branches!r}")
        if metric_loss not in ("n_plus_m", "n_plus_1", "none"):
            raise ValueError(f"unknown metric_loss {metric_loss!r}")
        if threshold not in ("adaptive", "fixed"):
            raise ValueError(f"unknown threshold {threshold!r}")
        self.options = dict(
            num_classes=int(num_classes), image_size=[int(v) for v in image_size],
            branches=branches, metric_loss=metric_loss, threshold=threshold,
            reference_distance=float(reference_distance), margin=float(margin),
            num_positives=int(num_positives), num_negatives=int(num_negatives),
            query_in_positives=bool(query_in_positives), alpha=float(alpha), sign_a=int(sign_a),
            sign_b=int(sign_b), positive_label=int(positive_label), rank=rank,
            width=float(width), batch_norm=bool(batch_norm), grayscale=bool(grayscale),
            ec_units=[int(u) for u in ec_units], ml_units=int(ml_units),
            connect_units=int(connect_units), embedding_dim=int(embedding_dim),
            dropout=float(dropout), weight_decay=float(weight_decay))
        self.positives_per_query = num_positives - 1 if query_in_positives else num_positives
        if metric_loss != "none" and self.positives_per_query < 1:
            raise ValueError("the metric loss needs a positive besides the query: "
                             f"num_positives={num_positives}, "
                             f"query_in_positives={query_in_positives}")
        self.tuple_size = 1 + self.positives_per_query + int(num_negatives)
        regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
        channels = 1 if grayscale else 3
        self.backbone = build_inception_fer((*self.options["image_size"], channels), width,
                                            batch_norm, weight_decay)
        self.ec_layers = [self._dense(units, f"fc{i}", regularizer)
                          for i, units in enumerate(ec_units, start=1)]
        self.classifier = keras.layers.Dense(num_classes, kernel_regularizer=regularizer,
                                             name="expression_logits")
        if branches == "2B":
            self.fc3 = self._dense(ml_units, "fc3", regularizer)
            # Eq. 13: FC4 = P'[FC2; FC3] = P1'FC2 + P2'FC3 (no bias in the equation).
            self.connect = self._dense(connect_units, "fc4_connect", regularizer, use_bias=False)
            self.embedding_layer = keras.layers.Dense(embedding_dim, kernel_regularizer=regularizer,
                                                      name="ml_embedding")
        self.dropout = keras.layers.Dropout(dropout) if dropout else None
        self.adaptive = None
        if metric_loss == "n_plus_m" and threshold == "adaptive":
            self.adaptive = AdaptiveTupleClusters(
                sign_a=sign_a, sign_b=sign_b, positive_label=positive_label, rank=rank,
                margin=margin / 2, initial_reference=reference_distance,
                dtype="float32", name="adaptive_threshold")  # float32 under mixed precision
            dim = embedding_dim if branches == "2B" else int(ec_units[-1])
            positives = num_positives if query_in_positives else self.positives_per_query
            self.adaptive.build((None, positives, dim), (None, num_negatives, dim))
        self.softmax_loss = MaskedSoftmaxCrossEntropy(name="softmax_loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in (
            "loss", "softmax_loss", "metric_loss", "expression_accuracy", "kept_positives")}

    def build(self, input_shape=None):
        """Create every weight by one forward pass on zeros (``[2, H, W, 3]`` by default)."""
        shape = list(input_shape or (None, *self.options["image_size"], 3))
        shape[0] = 2
        self.call(keras.ops.zeros(shape), training=False)
        self.built = True

    @staticmethod
    def _dense(units, name, regularizer, use_bias=True):
        return [keras.layers.Dense(units, use_bias=use_bias, kernel_regularizer=regularizer,
                                   name=name),
                keras.layers.PReLU(name=f"{name}_prelu")]

    def _apply(self, block, x, training):
        for layer in block:
            x = layer(x)
        return self.dropout(x, training=training) if self.dropout else x

    def _features(self, images, training):
        """``(expression_logits, FC2, conv features)`` for normalised images."""
        images = keras.ops.convert_to_tensor(images)
        if self.options["grayscale"] and images.shape[-1] == 3:
            images = keras.ops.sum(images * keras.ops.convert_to_tensor(LUMA), axis=-1,
                                   keepdims=True)
        conv = self.backbone(images, training=training)
        x = conv
        for block in self.ec_layers:
            x = self._apply(block, x, training)
        return self.classifier(x), x, conv

    def classify(self, images, training=False):
        """The EC branch only: ``expression_logits`` (what is served, §4 "testing phase")."""
        return self._features(images, training)[0]

    def call(self, images, training=False):
        logits, fc2, conv = self._features(images, training)
        if self.options["branches"] == "1B":
            return {"expression_logits": logits, "embedding": fc2}
        fc3 = self._apply(self.fc3, conv, training)
        fc4 = self._apply(self.connect, keras.ops.concatenate([fc2, fc3], axis=-1), training)
        return {"expression_logits": logits, "embedding": self.embedding_layer(fc4)}

    # --- losses ---------------------------------------------------------------------------

    def _tuples(self, values):
        """``[X * T, ...]`` -> ``[X, T, ...]`` with T = 1 + P + N; errors on a bad layout."""
        total = values.shape[0]
        if total is not None and total % self.tuple_size:
            raise ValueError(
                f"a tuple batch of {total} images is not a whole number of tuples of "
                f"1 + {self.positives_per_query} + {self.options['num_negatives']} images; "
                "build it with make_tuple_dataset(positives_per_query="
                f"{self.positives_per_query}, negatives_per_query={self.options['num_negatives']})")
        return tf.reshape(values, tf.concat([[-1, self.tuple_size], tf.shape(values)[1:]], 0))

    def metric_loss(self, embeddings):
        """``(per-tuple metric loss [X], fraction of positives kept [X] or None)`` for ``[X, T, d]``.

        The fraction (M* / M, Algorithm 1) is None for the (N+1)-tuplet loss, which mines nothing.
        """
        first_negative = 1 + self.positives_per_query
        negatives = embeddings[:, first_negative:]
        if self.options["metric_loss"] == "n_plus_1":
            loss = tuplet_loss_per_tuple(embeddings[:, 0], embeddings[:, 1], negatives,
                                         self.options["margin"])
            return loss, None
        start = 0 if self.options["query_in_positives"] else 1
        positives = embeddings[:, start:first_negative]
        if self.adaptive is not None:
            loss, keep = self.adaptive(positives, negatives)
        else:
            loss, keep = tuple_clusters_loss_per_tuple(
                positives, negatives, self.options["reference_distance"], self.options["margin"])
        return loss, tf.reduce_mean(tf.cast(keep, tf.float32), axis=-1)

    def compute_losses(self, batch, outputs):
        """``{loss name: replica share}`` and the (query) rows the accuracy is taken on."""
        logits, labels = outputs["expression_logits"], batch["expression"]
        mask = batch["expression_mask"]
        tuples = "tuple_role" in batch and self.options["metric_loss"] != "none"
        if tuples:
            logits, labels, mask = (self._tuples(v)[:, 0] for v in (logits, labels, mask))
        losses = {"softmax_loss": self.softmax_loss(labels, logits, sample_weight=mask)}
        kept = None
        if tuples:
            per_tuple, kept = self.metric_loss(self._tuples(outputs["embedding"]))
            losses["metric_loss"] = masked_mean(per_tuple, tf.ones_like(per_tuple))
        return losses, (logits, labels, mask, kept)

    def _total(self, losses):
        total = losses["softmax_loss"] + self.options["alpha"] * losses.get("metric_loss", 0.0)
        if self.losses:
            total += tf.add_n(self.losses) / _num_replicas()
        return total

    # --- Keras steps ----------------------------------------------------------------------

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, data):
        with tf.GradientTape() as tape:
            outputs = self(data["image"], training=True)
            losses, rows = self.compute_losses(data, outputs)
            total = self._total(losses)
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._update_metrics(losses, total, rows)

    def test_step(self, data):
        outputs = self(data["image"], training=False)
        losses, rows = self.compute_losses(data, outputs)
        return self._update_metrics(losses, self._total(losses), rows)

    def predict_step(self, data):
        images = data["image"] if isinstance(data, dict) else data
        return self(images, training=False)

    def _update_metrics(self, losses, total, rows):
        replicas = float(_num_replicas())
        self.trackers["loss"].update_state(total * replicas)
        for name, value in losses.items():
            self.trackers[name].update_state(value * replicas)
        logits, labels, mask, kept = rows
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        correct = tf.cast(predicted == tf.cast(labels, tf.int32), tf.float32)
        self.trackers["expression_accuracy"].update_state(correct, sample_weight=mask)
        if kept is not None:
            self.trackers["kept_positives"].update_state(kept)
        return {name: tracker.result() for name, tracker in self.trackers.items()
                if name in losses or name in ("loss", "expression_accuracy")
                or (name == "kept_positives" and kept is not None)}

    def get_config(self):
        config = super().get_config()
        config.update(self.options)
        return config
