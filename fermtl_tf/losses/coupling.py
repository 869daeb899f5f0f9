"""Coupling of emotions and action units by task relatedness (FaceBehaviorNet, §3.1.2).

Kollias et al., "Distribution Matching for Heterogeneous Multi-Task Learning", couple the
expression and AU heads with prior knowledge p(AU | emotion) (Table 1, see
:mod:`fermtl_tf.knowledge.relatedness`) in three ways, which combine freely:

* :class:`CoAnnotation` -- a *label transform*: an expression label adds AU labels, an AU
  labelling adds an expression label; the supervised losses of Eq. 2 then see more labels;
* :class:`SoftCoAnnotationLoss` -- Eq. 5-7: a soft emotion label from the annotated AUs,
  matched with the predicted emotions;
* :class:`DistributionMatchingLoss` -- Eq. 3-4: the predicted AUs matched with the AU
  distribution implied by the predicted emotions; also identities x attributes
  (Eq. 10-11, §3.2.2) with an explicit relatedness matrix.

Form of distribution matching (Eq. 4, and Eq. 11 for attributes). Each AU (attribute) is
a binary variable, so "the distribution over AU predictions p(y_au^i|x)" of §3.1.2 is a
Bernoulli distribution over {0, 1}, and the cross entropy of two Bernoullis p and q is
``-[p log q + (1 - p) log(1 - q)]``, summed over the AUs (``form="bernoulli"``, the
default). Footnote 5 calls Eq. 4 ``KL(p || q)``, whose q-dependent part is exactly this, and
the paper's own example ("AUs 12, 25 and 6 [...] activated" when happiness is predicted)
needs the ``(1 - p) log(1 - q)`` term: the shorthand printed in Eq. 4, ``-p log q`` summed
over AUs (``form="printed"``), is minimised by switching every AU off whatever ``q`` is,
and can never turn an AU on. ``"printed"`` is kept for comparison (docs/FIDELITY.md).

Direction of the two matching losses. Eq. 4 and Eq. 7 are printed as ``-p log q``, with
``p`` the network's prediction being trained (AU probabilities in Eq. 4, emotion
probabilities in Eq. 7) and ``q`` the derived distribution. That is the default
(``direction="p_log_q"``). The text calls both "cross entropy with the soft targets" in
the spirit of distillation, which is usually ``-q log p`` (targets ``q``); footnote 5 calls
Eq. 4 ``KL(p || q)``, whose ``q``-dependent part is ``-p log q`` again. ``direction=
"q_log_p"`` gives the distillation reading. In the Bernoulli form the direction says which
side is the target: ``p_log_q`` is ``-[p log q + (1-p) log(1-q)]``, ``q_log_p`` is
``-[q log p + (1-q) log(1-p)]``. Gradients flow into both ``p`` and ``q`` when both are
predictions (Eq. 4 "aligns the predictions" of the two heads).

Distribution: the losses are masked means over samples with a *global* denominator
(:func:`~fermtl_tf.losses.masked.masked_mean`), so N replicas equal one device.
"""

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.knowledge.relatedness import FACEBEHAVIORNET_AUS, relatedness_matrix
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.losses.masked import DEFAULT_EPSILON, masked_mean

#: The two readings of Eq. 4 / Eq. 7 (see the module docstring).
DIRECTIONS = ("p_log_q", "q_log_p")

#: Distribution matching over binary labels: per-label Bernoulli cross entropy, or Eq. 4's
#: printed shorthand ``-p log q`` (see the module docstring).
DM_FORMS = ("bernoulli", "printed")

#: Observational weighting by default per source: Eq. 3 is binary for the cognitive study;
#: the Aff-Wild2 column is "the distribution of AUs for each basic expression" (§3.1.1).
DEFAULT_DM_OBSERVATIONAL = {"cognitive": "binary", "affwild2": "weighted"}


def _check_direction(direction):
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction


def _check_form(form):
    if form not in DM_FORMS:
        raise ValueError(f"form must be one of {DM_FORMS}, got {form!r}")
    return form


def _cross_entropy(p, log_p, q, log_q, direction):
    """``sum_k -p log q`` or ``sum_k -q log p`` over the last axis."""
    if direction == "p_log_q":
        return -tf.reduce_sum(p * log_q, axis=-1)
    return -tf.reduce_sum(q * log_p, axis=-1)


def _bernoulli_cross_entropy(p, log_p, log_1mp, q, log_q, log_1mq, direction):
    """``sum_k -[p log q + (1-p) log(1-q)]`` (``p_log_q``) or the same with p and q swapped
    (``q_log_p``), over the last axis: one Bernoulli per label."""
    if direction == "p_log_q":
        return -tf.reduce_sum(p * log_q + (1.0 - p) * log_1mq, axis=-1)
    return -tf.reduce_sum(q * log_p + (1.0 - q) * log_1mp, axis=-1)


def _per_sample_mask(sample_weight, batch_like):
    if sample_weight is None:
        return tf.ones(tf.shape(batch_like)[:1], tf.float32)
    return tf.reshape(tf.cast(sample_weight, tf.float32), [-1])


@keras.saving.register_keras_serializable(package="fermtl_tf")
class DistributionMatchingLoss(keras.losses.Loss):
    """Eq. 3-4: match predicted AUs with the mixture over predicted emotions.

    ``q(AU_i|x) = sum_e p(e|x) p(AU_i|e)`` (Eq. 3), loss (Eq. 4, ``form="bernoulli"``)
    ``E_x sum_i -[p_i log q_i + (1 - p_i) log(1 - q_i)]`` with ``p_i = p(AU_i|x)``, or as
    printed (``form="printed"``) ``E_x sum_i -p_i log q_i``, over all samples (no label
    needed; see the module docstring for why Bernoulli is the default). With an explicit
    ``relatedness`` matrix ``[C, K]`` it is Eq. 10-11: classes = identities, columns =
    attributes, ``p(attr|id)`` e.g. from :func:`~fermtl_tf.knowledge.relatedness.
    infer_conditional` on CelebA.

    Call: ``loss(class_outputs, label_outputs, sample_weight=None)`` -- the first argument
    is the *emotion* (or identity) head, the second the *AU* (or attribute) head, both
    logits unless ``from_logits=False`` (then softmax and sigmoid probabilities).
    ``sample_weight`` ``[B]`` excludes samples (e.g. padding); default all.

    Args:
        emotions, au_names, source, observational: select the table of
            :func:`~fermtl_tf.knowledge.relatedness.relatedness_matrix`; ``observational``
            ``None`` picks :data:`DEFAULT_DM_OBSERVATIONAL` for the source ("binary",
            Eq. 3, for the cognitive study; footnote 4's "weighted" variant is optional).
        relatedness: explicit ``[C, K]`` matrix of p(label_k | class); overrides the above.
        form: ``"bernoulli"`` (per-AU Bernoulli cross entropy, default) or ``"printed"``
            (Eq. 4's ``-p log q`` only).
        direction: ``"p_log_q"`` (Eq. 4 as printed) or ``"q_log_p"``.
        epsilon: floor of ``q``, ``1 - q`` and ``p``, ``1 - p`` inside the logarithm (q is
            0 for an AU no predicted emotion relates to, e.g. AU14, or under neutral, and 1
            for happiness' AUs when happiness is certain).

    Example:
        >>> dm = DistributionMatchingLoss()  # BASIC7 x the 17 FaceBehaviorNet AUs
        >>> dm(outputs["expression_logits"], outputs["au_logits"])
    """

    def __init__(self, emotions=BASIC7, au_names=FACEBEHAVIORNET_AUS, source="cognitive",
                 observational=None, relatedness=None, form="bernoulli", direction="p_log_q",
                 from_logits=True, epsilon=DEFAULT_EPSILON, name="distribution_matching_loss",
                 **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        self.emotions = tuple(emotions)
        self.au_names = tuple(au_names)
        self.source = source
        if observational is None and relatedness is None:
            if source not in DEFAULT_DM_OBSERVATIONAL:
                raise ValueError(f"unknown relatedness source {source!r}; known: "
                                 f"{sorted(DEFAULT_DM_OBSERVATIONAL)}")
            observational = DEFAULT_DM_OBSERVATIONAL[source]
        self.observational = observational
        self.relatedness = None if relatedness is None else np.asarray(relatedness, np.float32)
        self.form = _check_form(form)
        self.direction = _check_direction(direction)
        self.from_logits = bool(from_logits)
        self.epsilon = float(epsilon)
        if self.relatedness is None:
            matrix = relatedness_matrix(self.emotions, self.au_names, source, observational)
        else:
            if self.relatedness.ndim != 2:
                raise ValueError(f"relatedness must be a [classes, labels] matrix, got "
                                 f"shape {self.relatedness.shape}")
            matrix = self.relatedness
        self.matrix = tf.constant(matrix)

    def __call__(self, class_outputs, label_outputs, sample_weight=None):
        with tf.name_scope(self.name):
            class_outputs = tf.cast(class_outputs, tf.float32)
            label_outputs = tf.cast(label_outputs, tf.float32)
            if self.from_logits:
                class_probs = tf.nn.softmax(class_outputs, axis=-1)
                p = tf.sigmoid(label_outputs)
                log_p = tf.math.log_sigmoid(label_outputs)
                log_1mp = tf.math.log_sigmoid(-label_outputs)
            else:
                class_probs = class_outputs
                p = label_outputs
                log_p, log_1mp = self._safe_log(p), self._safe_log(1.0 - p)
            q = tf.matmul(class_probs, self.matrix)  # Eq. 3 / Eq. 10
            log_q = self._safe_log(q)
            if self.form == "printed":
                per_sample = _cross_entropy(p, log_p, q, log_q, self.direction)
            else:
                per_sample = _bernoulli_cross_entropy(p, log_p, log_1mp, q, log_q,
                                                      self._safe_log(1.0 - q), self.direction)
            return masked_mean(per_sample, _per_sample_mask(sample_weight, per_sample),
                               self.epsilon)

    def _safe_log(self, x):
        return tf.math.log(tf.clip_by_value(x, self.epsilon, 1.0))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {
            "name": self.name, "emotions": list(self.emotions), "au_names": list(self.au_names),
            "source": self.source, "observational": self.observational,
            "relatedness": None if self.relatedness is None else self.relatedness.tolist(),
            "form": self.form, "direction": self.direction, "from_logits": self.from_logits,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="fermtl_tf")
class SoftCoAnnotationLoss(keras.losses.Loss):
    """Eq. 5-7: a soft emotion label from the annotated AUs, matched with p(emo|x).

    Eq. 5: ``I(e|x) = sum_k w_ek y_k / sum_k w_ek`` with ``w`` = 1 (prototypical), ``w``
    (observational) or 0; Eq. 6: ``q(e|x) = softmax_e I(e|x)``; Eq. 7: ``E_x sum_e
    -p(e|x) log q(e|x)`` over the images with AU annotation.

    Missing AU annotations (``sample_weight`` 0) are left out of both sums of Eq. 5, so an
    emotion's indicator is the weighted fraction of its *annotated* AUs that are active
    (a dataset without AU7 is not read as "AU7 absent"); an emotion with none of its AUs
    annotated, and neutral (no AUs), gets ``I = 0``. An image counts if any AU is
    annotated.

    Call: ``loss(au_labels, emotion_outputs, sample_weight=au_mask)`` with ``au_labels``
    ``[B, K]`` in [0, 1], ``emotion_outputs`` logits ``[B, E]`` (probabilities if
    ``from_logits=False``) and ``au_mask`` ``[B, K]``.

    Args:
        emotions, au_names, source: the relatedness table (``emotions`` in the order of
            the emotion head, ``au_names`` in the order of the AU labels).
        observational: ``"weighted"`` (Eq. 5) or ``"binary"`` ("all weights equal 1 if
            without reweighting").
        direction: ``"p_log_q"`` (Eq. 7 as printed) or ``"q_log_p"`` (soft targets).
        epsilon: floor of ``p`` inside the logarithm when ``from_logits=False``, and of
            the image count.

    Example:
        >>> sca = SoftCoAnnotationLoss()
        >>> sca(batch["au"], outputs["expression_logits"], sample_weight=batch["au_mask"])
    """

    def __init__(self, emotions=BASIC7, au_names=FACEBEHAVIORNET_AUS, source="cognitive",
                 observational="weighted", direction="p_log_q", from_logits=True,
                 epsilon=DEFAULT_EPSILON, name="soft_co_annotation_loss", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        self.emotions = tuple(emotions)
        self.au_names = tuple(au_names)
        self.source = source
        self.observational = observational
        self.direction = _check_direction(direction)
        self.from_logits = bool(from_logits)
        self.epsilon = float(epsilon)
        self.weights_matrix = tf.constant(
            relatedness_matrix(self.emotions, self.au_names, source, observational))

    def soft_label(self, au_labels, au_mask):
        """Eq. 5-6: ``q(e|x)`` ``[B, E]`` from AU labels and their presence mask."""
        au_labels = tf.cast(au_labels, tf.float32)
        au_mask = tf.cast(tf.cast(au_mask, tf.float32) > 0, tf.float32)
        present = tf.where(au_mask > 0, au_labels, tf.zeros_like(au_labels))
        numerator = tf.matmul(present, self.weights_matrix, transpose_b=True)
        denominator = tf.matmul(au_mask, self.weights_matrix, transpose_b=True)
        indicator = tf.math.divide_no_nan(numerator, denominator)
        return tf.nn.softmax(indicator, axis=-1)

    def __call__(self, au_labels, emotion_outputs, sample_weight=None):
        with tf.name_scope(self.name):
            emotion_outputs = tf.cast(emotion_outputs, tf.float32)
            au_mask = tf.ones_like(tf.cast(au_labels, tf.float32)) if sample_weight is None \
                else tf.broadcast_to(tf.cast(sample_weight, tf.float32), tf.shape(au_labels))
            q = self.soft_label(au_labels, au_mask)
            if self.from_logits:
                p = tf.nn.softmax(emotion_outputs, axis=-1)
                log_p = tf.nn.log_softmax(emotion_outputs, axis=-1)
            else:
                p = emotion_outputs
                log_p = tf.math.log(tf.clip_by_value(p, self.epsilon, 1.0))
            per_sample = _cross_entropy(p, log_p, q, tf.math.log(q), self.direction)
            has_aus = tf.cast(tf.reduce_any(au_mask > 0, axis=-1), tf.float32)
            return masked_mean(per_sample, has_aus, self.epsilon)

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {
            "name": self.name, "emotions": list(self.emotions), "au_names": list(self.au_names),
            "source": self.source, "observational": self.observational,
            "direction": self.direction, "from_logits": self.from_logits,
            "epsilon": self.epsilon,
        }


def _priority(requirements, weights):
    """Rank of each emotion for §3.1.2's tie rule: more required AUs first, then a larger
    weight sum (more prototypical AUs), then the earlier vocabulary entry."""
    sizes = requirements.sum(axis=1)
    weight_sums = weights.sum(axis=1)
    order = sorted(range(len(sizes)), key=lambda e: (sizes[e], weight_sums[e], -e))
    rank = np.empty(len(sizes), np.int32)
    rank[order] = np.arange(len(sizes), dtype=np.int32)
    return rank


@keras.saving.register_keras_serializable(package="fermtl_tf")
class CoAnnotation:
    """§3.1.2 co-annotation: a batch transform that adds AU and expression labels.

    * **expression -> AUs**: an image with expression ``e`` gets ``y_au = 1`` for the
      prototypical and observational AUs of ``e`` whose AU label it lacks, with AU weight
      (``au_mask``) 1 for prototypical AUs and the annotators' agreement ``w`` for
      observational ones ("we re-weight the contributions of the observational AUs",
      ``reweight_observational=True``). Other AUs stay unlabelled (footnote 3: the
      co-annotated ``y_au`` "only contains prototypical and observational AUs"); neutral
      adds nothing. Existing AU labels are kept.
    * **AUs -> expression**: an image without an expression label gets emotion ``e`` when
      every prototypical and observational AU of ``e`` (within ``au_names``) is annotated
      and active (label >= ``threshold``). When several emotions qualify, the one with the
      most required AUs wins ("the largest requirement"); equal counts go to the larger
      weight sum, then to the earlier emotion in ``emotions``. Emotions without AUs
      (neutral) are never assigned.

    Both directions use the labels as given, so the AUs an expression adds are not used
    to infer an expression back. The weighted ``au_mask`` is meant for
    :class:`~fermtl_tf.losses.masked.MaskedBinaryCrossEntropyPerImage` (Eq. 2's per-image
    mean, weighted by it) or :class:`~fermtl_tf.losses.masked.MaskedBinaryCrossEntropy`.

    Use inside a train step, before the losses::

        batch = self.co_annotation(self.prepare_batch(data))   # TF ops, graph friendly

    Args:
        emotions: the expression vocabulary (names, in label order).
        au_names: the AU vocabulary (names, in the order of ``au``'s columns).
        source: ``"cognitive"`` or ``"affwild2"`` (Table 1). For Aff-Wild2 every listed
            AU is "observational" with its image fraction as weight.
        reweight_observational: weight observational AUs by ``w`` (else 1).
        expression_to_au, au_to_expression: switch each direction.
        threshold: an AU label at or above it counts as active.
    """

    def __init__(self, emotions=BASIC7, au_names=FACEBEHAVIORNET_AUS, source="cognitive",
                 reweight_observational=True, expression_to_au=True, au_to_expression=True,
                 threshold=0.5):
        self.emotions = tuple(emotions)
        self.au_names = tuple(au_names)
        self.source = source
        self.reweight_observational = bool(reweight_observational)
        self.expression_to_au = bool(expression_to_au)
        self.au_to_expression = bool(au_to_expression)
        self.threshold = float(threshold)
        weights = relatedness_matrix(self.emotions, self.au_names, source, "weighted")
        requirements = (weights > 0).astype(np.float32)
        self.au_weights = tf.constant(weights if self.reweight_observational else requirements)
        self.requirements = tf.constant(requirements)
        self.requirement_sizes = tf.constant(requirements.sum(axis=1))
        self.priority = tf.constant(_priority(requirements, weights))

    def __call__(self, batch):
        """A copy of ``batch`` with ``expression``, ``expression_mask``, ``au``,
        ``au_mask`` co-annotated (all four keys must be present)."""
        missing = [key for key in ("expression", "expression_mask", "au", "au_mask")
                   if key not in batch]
        if missing:
            raise KeyError(f"CoAnnotation needs batch keys {missing}; batch has {sorted(batch)}")
        result = dict(batch)
        (result["expression"], result["expression_mask"], result["au"],
         result["au_mask"]) = self.co_annotate(batch["expression"], batch["expression_mask"],
                                               batch["au"], batch["au_mask"])
        return result

    def co_annotate(self, expression, expression_mask, au, au_mask):
        """The tensor form of :meth:`__call__`: returns the four co-annotated tensors.

        ``expression`` and ``expression_mask`` keep their dtypes; ``au`` and ``au_mask``
        come back float32 (``au_mask`` holds the observational weights).
        """
        label_dtype, mask_dtype = expression.dtype, expression_mask.dtype
        labels = tf.cast(tf.reshape(expression, [-1]), tf.int32)
        has_expression = tf.reshape(tf.cast(expression_mask, tf.float32), [-1]) > 0
        au = tf.cast(au, tf.float32)
        au_mask = tf.cast(au_mask, tf.float32)
        new_labels, new_has = labels, has_expression
        if self.au_to_expression:
            new_labels, new_has = self._expression_from_aus(labels, has_expression, au, au_mask)
        if self.expression_to_au:
            au, au_mask = self._aus_from_expression(labels, has_expression, au, au_mask)
        new_labels = tf.reshape(tf.cast(new_labels, label_dtype), tf.shape(expression))
        new_mask = tf.reshape(tf.cast(new_has, mask_dtype), tf.shape(expression_mask))
        return new_labels, new_mask, au, au_mask

    def _aus_from_expression(self, labels, has_expression, au, au_mask):
        safe = tf.where(has_expression, labels, tf.zeros_like(labels))
        added = tf.gather(self.au_weights, safe) * tf.cast(has_expression, tf.float32)[:, None]
        fill = (added > 0) & (au_mask <= 0)
        return (tf.where(fill, tf.ones_like(au), au), tf.where(fill, added, au_mask))

    def _expression_from_aus(self, labels, has_expression, au, au_mask):
        active = tf.cast((au_mask > 0) & (au >= self.threshold), tf.float32)
        met = tf.matmul(active, self.requirements, transpose_b=True)  # [B, E]
        satisfied = (met >= self.requirement_sizes) & (self.requirement_sizes > 0)
        score = tf.where(satisfied, self.priority[None, :], -tf.ones_like(satisfied, tf.int32))
        choice = tf.argmax(score, axis=-1, output_type=tf.int32)
        assign = tf.reduce_any(satisfied, axis=-1) & ~has_expression
        return tf.where(assign, choice, labels), has_expression | assign

    def get_config(self):
        return {
            "emotions": list(self.emotions), "au_names": list(self.au_names),
            "source": self.source, "reweight_observational": self.reweight_observational,
            "expression_to_au": self.expression_to_au,
            "au_to_expression": self.au_to_expression, "threshold": self.threshold,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
