"""MML: AU-assisted meta multi-task learning (Li et al. 2023, §4 and §5.2).

Base net (§5.2): a backbone ``f`` (ResNet-34 at 112x112), one FC expression classifier
and one FC AU classifier, ``theta = {theta_b, theta_c^emo, theta_c^AU}``. Meta net
``g(f(x); psi)``: one FC layer with a sigmoid, initialised to zero (every weight starts at
0.5), giving per-sample weights for the meta-weighted terms (``omega^AU``, ``omega^AM``
for MML; FER weight fixed at 1, Eq. 11).

Per-sample terms: ``emo`` (Eq. 2, softmax cross-entropy), ``au`` (Eq. 1, binary
cross-entropy over the sample's annotated AUs, summed as printed or averaged) and ``am``
(Eq. 9, :class:`~fermtl_tf.losses.alignment.AlignmentLoss`). The batch sum of Eq. 12 is
taken as a mean over the (global) batch -- a constant factor 1/B folded into alpha --
each term over the samples that carry its label.

One iteration with meta weights (Fig. 3):

(i) meta-train (Eq. 12-13): ``theta* = theta - alpha grad_theta L_MTL(theta, psi)``, a
    functional look-ahead: the look-ahead weights are tensors, fed to the backbone and
    head by ``stateless_call`` (no model copy); alpha is each group's current learning
    rate (backbone 0.001, classifiers 0.01).
(ii) meta-test (Eq. 14-15): ``psi_hat = psi - beta grad_psi L_val(theta^emo*)`` on the
    meta batch (the held-out quarter), ``L_val = L_emo``; the gradient flows through
    ``theta*`` into the weights of (i) (nested tapes: a derivative of a gradient).
(iii) base-learning (Eq. 16-17): the weights are recomputed with ``psi_hat`` and theta
    takes one step on ``L_MTL(theta, psi_hat)``. The forward pass of (i) is reused: the
    weights do not depend on theta (see below), so ``grad_theta L_MTL(theta, psi_hat)`` is
    the gradient of the same per-sample losses with the new weights as output gradients.

Choices (docs/FIDELITY.md): the meta net reads ``stop_gradient(f(x))`` -- the weights
steer theta only through the losses they weight, never by shrinking themselves; BN
layers of the look-ahead forward use the meta batch's statistics and their moving-average
updates are discarded; ``first_order=True`` (a departure) replaces the per-sample
gradients in theta* by batch-level task gradients held constant, so the meta gradient
needs no derivative of a gradient; ``lookahead="classifiers"`` (a departure) steps only the
classifiers in theta* (the backbone stays at theta_b in L_val), so the meta gradient needs
no backward through the backbone (about 1.3 instead of 3.3 traditional-MTL steps per
iteration; the base-learning step still updates all of theta).

Optimisers: ``self.optimizer`` (from ``compile``; default SGD 0.01) updates the two
classifiers; ``backbone_optimizer`` and ``meta_optimizer`` are owned by the model (SGD
with ``learning_rates["backbone"]``/``["meta"]``). Keras saves every optimiser attribute
of a model in the ``.keras`` file; :meth:`compile_from_config` builds each on its own
variables so that all three states load back (resume).

Variants without meta weights (STL, traditional MTL Eq. 3, AM Eq. 10) run one plain
step with the fixed weights.
"""

import dataclasses

import keras
import tensorflow as tf

from fermtl_tf.losses.alignment import AlignmentLoss
from fermtl_tf.losses.masked import DEFAULT_EPSILON, global_sum

#: Loss terms of the base net and their labels.
TERMS = ("emo", "au", "am")

#: What theta* of Eq. 13 steps: the whole base net (the paper) or the classifiers only.
LOOKAHEADS = ("base_net", "classifiers")

#: How Eq. 1 reduces over the annotated AUs of one sample.
AU_REDUCTIONS = ("sum", "mean")

DEFAULT_LEARNING_RATES = {"backbone": 0.001, "classifiers": 0.01, "meta": 0.01}


def _sample_mean(values, mask):
    """Mean of per-sample ``values`` over ``mask`` > 0 with the global (all-replica) count.

    As :func:`fermtl_tf.losses.masked.masked_mean`, but in the dtype of ``values`` (the
    meta-gradient test runs in float64).
    """
    weighted = tf.where(mask > 0, values * mask, tf.zeros_like(values))
    return tf.reduce_sum(weighted) / _global_count(mask)


def _global_count(mask):
    count = tf.stop_gradient(global_sum(tf.reduce_sum(mask)))
    return tf.maximum(count, tf.cast(DEFAULT_EPSILON, mask.dtype))


def _expression_loss(logits, batch):
    """Eq. 2 per sample and its presence mask (a missing label's filler is never read)."""
    mask = tf.cast(tf.reshape(batch["expression_mask"], [-1]), logits.dtype)
    labels = tf.where(mask > 0, tf.cast(tf.reshape(batch["expression"], [-1]), tf.int32), 0)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits), mask


def _gradients(tape, targets, sources, output_gradients=None):
    """``tape.gradient`` with zeros for unconnected sources (e.g. the AU head under STL).

    Done here rather than with ``UnconnectedGradients.ZERO``, which fails on Keras 3
    variables (their ``dtype`` is a string).
    """
    gradients = tape.gradient(targets, sources, output_gradients=output_gradients)
    return [tf.zeros_like(s) if g is None else g
            for g, s in zip(gradients, sources, strict=True)]


def _all_reduce(tensors):
    """Sum a list of tensors over the replicas of the current replica context."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tensors)


@dataclasses.dataclass
class _Phases:
    """What phases (i)-(ii) leave for phase (iii)."""

    tape: tf.GradientTape
    features: tf.Tensor
    outputs: dict
    losses: dict
    val_loss: tf.Tensor
    meta_gradients: list


def _train_and_meta(data):
    """Split a step's input: ``{"train": batch, "meta": batch}`` or a plain batch."""
    if "image" in data:
        return data, None
    return data["train"], data.get("meta")


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MetaMTLModel(keras.Model):
    """Base net + meta net of MML with the three-phase train step.

    Args:
        backbone: ``keras.Model`` images -> features [B, D].
        num_classes: expression classes (14 for RAF-CE).
        num_aus: AU outputs.
        relatedness: ``[num_classes, num_aus]`` p(AU | emo) table for the ``am`` term.
        terms: loss terms in use, a subset of :data:`TERMS` containing ``"emo"``.
        meta_terms: terms weighted per sample by the meta net (empty: no meta learning).
        fixed_weights: ``{term: weight}`` for the other terms (rho of Eq. 3 / 10).
        sigmoid, dm1_form: options of :class:`AlignmentLoss`.
        au_reduction: ``"sum"`` (Eq. 1 as printed) or ``"mean"`` over annotated AUs.
        learning_rates: ``{"backbone", "classifiers", "meta"}`` (§5.2).
        momentum: SGD momentum of the backbone and meta optimisers.
        first_order: batch-level look-ahead (departure; see the module docstring).
        lookahead: ``"base_net"`` (Eq. 13) or ``"classifiers"`` (departure; see the module
            docstring).
    """

    def __init__(self, backbone, num_classes, num_aus, relatedness=None, terms=TERMS,
                 meta_terms=("au", "am"), fixed_weights=None, sigmoid="inside",
                 dm1_form="bernoulli", au_reduction="sum", learning_rates=None,
                 momentum=0.0, first_order=False, lookahead="base_net", **kwargs):
        super().__init__(**kwargs)
        self.terms = tuple(terms)
        self.meta_terms = tuple(meta_terms)
        self._check_terms()
        if au_reduction not in AU_REDUCTIONS:
            raise ValueError(f"au_reduction must be one of {AU_REDUCTIONS}, got {au_reduction!r}")
        if lookahead not in LOOKAHEADS:
            raise ValueError(f"lookahead must be one of {LOOKAHEADS}, got {lookahead!r}")
        self.fixed_weights = {t: float((fixed_weights or {}).get(t, 1.0)) for t in self.terms}
        self.num_classes, self.num_aus = int(num_classes), int(num_aus)
        self.au_reduction = au_reduction
        self.learning_rates = {**DEFAULT_LEARNING_RATES, **(learning_rates or {})}
        self.momentum = float(momentum)
        self.first_order = bool(first_order)
        self.lookahead = lookahead
        self.backbone = backbone
        features = backbone.output_shape[-1]
        self.expression_head = keras.layers.Dense(num_classes, name="expression_head")
        self.au_head = keras.layers.Dense(num_aus, name="au_head")
        self.meta_net = keras.layers.Dense(
            max(len(self.meta_terms), 1), activation="sigmoid", kernel_initializer="zeros",
            bias_initializer="zeros", name="meta_net")
        for layer in (self.expression_head, self.au_head, self.meta_net):
            layer.build((None, features))
        self.alignment = None
        if "am" in self.terms:
            if relatedness is None:
                raise ValueError("the 'am' term needs a relatedness table [classes, AUs]")
            self.alignment = AlignmentLoss(relatedness, term="am", sigmoid=sigmoid,
                                           dm1_form=dm1_form)
            shape = (len(self.alignment.relatedness), len(self.alignment.relatedness[0]))
            if shape != (self.num_classes, self.num_aus):
                raise ValueError(f"relatedness is {shape}, expected "
                                 f"({self.num_classes}, {self.num_aus})")
        self.backbone_optimizer = self._sgd(self.learning_rates["backbone"], "backbone_sgd")
        self.meta_optimizer = self._sgd(self.learning_rates["meta"], "meta_sgd")
        names = ["loss", *(f"{t}_loss" for t in self.terms), "expression_accuracy"]
        if self.meta_terms:
            names += ["meta_emo_loss", *(f"omega_{t}" for t in self.meta_terms)]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True

    def _check_terms(self):
        if "emo" not in self.terms or not set(self.terms) <= set(TERMS):
            raise ValueError(f"terms must include 'emo' and lie in {TERMS}, got {self.terms}")
        if not set(self.meta_terms) <= set(self.terms):
            raise ValueError(f"meta_terms {self.meta_terms} must be among terms {self.terms}")

    def _sgd(self, learning_rate, name):
        return keras.optimizers.SGD(learning_rate, momentum=self.momentum, name=name)

    # -- variables ---------------------------------------------------------------------

    @property
    def classifier_variables(self):
        return self.expression_head.trainable_variables + self.au_head.trainable_variables

    @property
    def base_variables(self):
        """theta = backbone + classifiers, in this order."""
        return self.backbone.trainable_variables + self.classifier_variables

    @property
    def metrics(self):
        return list(self._trackers.values())

    # -- forward ------------------------------------------------------------------------

    def call(self, images, training=False):
        return self._forward(images, training)[1]

    def _forward(self, images, training):
        """``(f(x), {"expression_logits", "au_logits"})``."""
        features = self.backbone(images, training=training)
        return features, {"expression_logits": self.expression_head(features),
                          "au_logits": self.au_head(features)}

    def meta_weights(self, features):
        """Per-sample weights ``{term: [B]}`` of ``g(stop_gradient(f(x)); psi)``."""
        weights = self.meta_net(tf.stop_gradient(features))
        return {term: weights[:, index] for index, term in enumerate(self.meta_terms)}

    def per_sample_losses(self, outputs, batch):
        """``{term: ([B] loss, [B] presence mask)}`` for the terms in use."""
        logits = outputs["expression_logits"]
        losses = {"emo": _expression_loss(logits, batch)}
        if "au" in self.terms:
            au_mask = tf.cast(batch["au_mask"], logits.dtype)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(
                tf.cast(batch["au"], logits.dtype), outputs["au_logits"])
            bce = tf.reduce_sum(tf.where(au_mask > 0, bce * au_mask, 0.0), axis=-1)
            count = tf.reduce_sum(au_mask, axis=-1)
            if self.au_reduction == "mean":
                bce = bce / tf.maximum(count, 1.0)
            losses["au"] = (bce, tf.cast(count > 0, logits.dtype))
        if "am" in self.terms:
            am = self.alignment(tf.nn.softmax(logits), tf.sigmoid(outputs["au_logits"]))
            losses["am"] = (am, tf.ones_like(am))
        return losses

    def weighted_total(self, losses, weights):
        """Eq. 11/12 (or Eq. 3/10): the mean over samples of the weighted terms."""
        total = 0.0
        for term, (values, mask) in losses.items():
            weight = weights[term] if term in weights else self.fixed_weights[term]
            total += _sample_mean(weight * values, mask)
        return total

    # -- steps --------------------------------------------------------------------------

    def _apply(self, gradients):
        """Apply base-net gradients (ordered as :attr:`base_variables`) per group."""
        split = len(self.backbone.trainable_variables)
        self.backbone_optimizer.apply_gradients(
            zip(gradients[:split], self.backbone.trainable_variables, strict=True))
        self.optimizer.apply_gradients(
            zip(gradients[split:], self.classifier_variables, strict=True))

    def _record(self, losses, weights, outputs, batch, total):
        self._trackers["loss"].update_state(total)
        for term, (values, mask) in losses.items():
            self._trackers[f"{term}_loss"].update_state(values, sample_weight=mask)
        for term, weight in weights.items():
            self._trackers[f"omega_{term}"].update_state(weight)
        correct = tf.cast(tf.equal(tf.argmax(outputs["expression_logits"], -1, tf.int32),
                                   tf.cast(tf.reshape(batch["expression"], [-1]), tf.int32)),
                          tf.float32)
        self._trackers["expression_accuracy"].update_state(
            correct, sample_weight=tf.reshape(batch["expression_mask"], [-1]))

    def _logs(self, skip=()):
        return {name: tracker.result() for name, tracker in self._trackers.items()
                if name not in skip}

    def train_step(self, data):
        train, meta = _train_and_meta(data)
        if not self.meta_terms:
            return self._plain_step(train)
        phases = self._meta_train_and_test(train, meta)
        psi = self.meta_net.trainable_variables
        self.meta_optimizer.apply_gradients(zip(phases.meta_gradients, psi, strict=True))
        new_weights = self.meta_weights(phases.features)
        gradients = self._weighted_gradients(phases.tape, phases.losses, new_weights,
                                             self.base_variables)
        del phases.tape
        self._apply(gradients)
        self._record(phases.losses, new_weights, phases.outputs, train,
                     self.weighted_total(phases.losses, new_weights))
        self._trackers["meta_emo_loss"].update_state(phases.val_loss)
        return self._logs()

    def meta_gradient(self, train, meta):
        """Phases (i)-(ii): ``(L_val(theta*(psi)), grad_psi L_val)`` (Eq. 13-15)."""
        phases = self._meta_train_and_test(train, meta)
        return phases.val_loss, phases.meta_gradients

    def _meta_train_and_test(self, train, meta):
        """Phases (i)-(ii). The two forwards run under the name scopes ``meta_train`` and
        ``meta_test``, which TensorFlow carries into the names of their gradient ops
        (``gradient_tape/meta_train/...``; a second-order op: ``gradient_tape/gradient_tape/
        ...``): how benchmarks/meta_mtl_step.py attributes a step's time to the phases."""
        if meta is None:
            raise ValueError("MML meta weights need a meta batch: feed {'train': batch, "
                             "'meta': batch} (the held-out quarter, Li et al. 2023 §5.2)")
        theta, psi = self.base_variables, self.meta_net.trainable_variables
        with tf.GradientTape() as outer:
            with tf.GradientTape(persistent=True) as inner, tf.name_scope("meta_train"):
                features, outputs = self._forward(train["image"], training=True)
                losses = self.per_sample_losses(outputs, train)
                weights = self.meta_weights(features)
            look_ahead = self._look_ahead(inner, losses, weights, theta)
            with tf.name_scope("meta_test"):
                val_loss = self.validation_loss(look_ahead, meta)
        return _Phases(tape=inner, features=features, outputs=outputs, losses=losses,
                       val_loss=val_loss, meta_gradients=outer.gradient(val_loss, psi))

    def _weighted_gradients(self, tape, losses, weights, theta):
        """grad_theta of :meth:`weighted_total` from the recorded per-sample losses.

        The weights enter as output gradients, so the same tape serves psi and psi_hat.
        """
        targets, coefficients = [], []
        for term, (values, mask) in losses.items():
            weight = weights[term] if term in weights else self.fixed_weights[term]
            targets.append(values)
            coefficients.append(weight * mask / _global_count(mask))
        return _gradients(tape, targets, theta, coefficients)

    def _look_ahead(self, tape, losses, weights, theta):
        """theta* = theta - alpha grad_theta L_MTL (Eq. 13), as a list of tensors; with
        ``lookahead="classifiers"`` its backbone entries are theta_b itself."""
        split = len(self.backbone.trainable_variables)
        fixed = [v.value for v in theta[:split]] if self.lookahead == "classifiers" else []
        stepped = theta[len(fixed):]
        if self.first_order:
            gradients = self._batch_level_gradients(tape, losses, weights, stepped)
        else:
            gradients = self._weighted_gradients(tape, losses, weights, stepped)
        gradients = _all_reduce(gradients)
        rates = ([self.backbone_optimizer.learning_rate] * (split - len(fixed))
                 + [self.optimizer.learning_rate] * (len(theta) - split))
        return fixed + [v - tf.cast(rate, v.dtype) * g
                        for v, g, rate in zip(stepped, gradients, rates, strict=True)]

    def _batch_level_gradients(self, tape, losses, weights, theta):
        """First-order departure: sum_t mean(omega_t) * stop_gradient(grad mean(L_t))."""
        gradients = [tf.zeros_like(v) for v in theta]
        for term, (values, mask) in losses.items():
            grad = _gradients(tape, [values], theta, [mask / _global_count(mask)])
            scale = (_sample_mean(weights[term], mask) if term in weights
                     else self.fixed_weights[term])
            gradients = [g + scale * tf.stop_gradient(d)
                         for g, d in zip(gradients, grad, strict=True)]
        return gradients

    def validation_loss(self, look_ahead, batch):
        """L_val = L_emo of the look-ahead net theta^emo* on the meta batch (Eq. 14)."""
        split = len(self.backbone.trainable_variables)
        features, _ = self.backbone.stateless_call(
            look_ahead[:split], [v.value for v in self.backbone.non_trainable_variables],
            batch["image"], training=True)
        head = look_ahead[split:split + len(self.expression_head.trainable_variables)]
        logits, _ = self.expression_head.stateless_call(head, [], features)
        return _sample_mean(*_expression_loss(logits, batch))

    def _plain_step(self, batch):
        with tf.GradientTape() as tape:
            outputs = self(batch["image"], training=True)
            losses = self.per_sample_losses(outputs, batch)
            total = self.weighted_total(losses, {})
        self._apply(_gradients(tape, [total], self.base_variables))
        self._record(losses, {}, outputs, batch, total)
        return self._logs()

    def test_step(self, data):
        batch, _ = _train_and_meta(data)
        features, outputs = self._forward(batch["image"], training=False)
        losses = self.per_sample_losses(outputs, batch)
        weights = self.meta_weights(features) if self.meta_terms else {}
        self._record(losses, weights, outputs, batch, self.weighted_total(losses, weights))
        return self._logs(skip=("meta_emo_loss",))  # L_val of the look-ahead: training only

    # -- compile and serialisation ---------------------------------------------------

    def compile(self, optimizer=None, **kwargs):
        """``optimizer`` updates the classifiers (default SGD, §5.2's 0.01)."""
        if optimizer is None:
            optimizer = self._sgd(self.learning_rates["classifiers"], "classifier_sgd")
        super().compile(optimizer=optimizer, **kwargs)
        self.build_optimizers()

    def build_optimizers(self):
        """Create the slots of all three optimisers, each on its own variables."""
        self.optimizer.build(self.classifier_variables)
        self.backbone_optimizer.build(self.backbone.trainable_variables)
        self.meta_optimizer.build(self.meta_net.trainable_variables)

    def get_compile_config(self):
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.saving.deserialize_keras_object(config["optimizer"]))

    def get_config(self):
        config = {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "num_aus": self.num_aus,
            "relatedness": self.alignment.relatedness if self.alignment else None,
            "terms": list(self.terms),
            "meta_terms": list(self.meta_terms),
            "fixed_weights": self.fixed_weights,
            "sigmoid": self.alignment.sigmoid if self.alignment else "inside",
            "dm1_form": self.alignment.dm1_form if self.alignment else "bernoulli",
            "au_reduction": self.au_reduction,
            "learning_rates": self.learning_rates,
            "momentum": self.momentum,
            "first_order": self.first_order,
            "lookahead": self.lookahead,
        }
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
