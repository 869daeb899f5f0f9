"""FaceBehaviorNet (Kollias et al., "Distribution Matching for Heterogeneous Multi-Task
Learning"): one shared network, heads for expressions, AUs, valence/arousal (Case I) or
identities and attributes (Case II), coupled by task relatedness.

* Architecture (§3.3, Fig. 1): :func:`~fermtl_tf.backbones.facebehaviornet.
  build_backbone` (the residual-unit network, or Table 4's VGG16/ResNet50/DenseNet121)
  and linear heads on the pooled features: ``expression_logits`` [B, 7] (softmax),
  ``au_logits`` [B, 17] (sigmoid), ``valence`` and ``arousal`` [B] (linear, no tanh:
  "a (linear) output layer gives final estimates for valence and arousal");
  Case II: ``identity_logits`` and ``attributes_logits``.
* Losses (Eq. 2): masked softmax cross entropy over images with an expression, Eq. 2's
  per-image AU BCE over the annotated AUs (``MaskedBinaryCrossEntropyPerImage``),
  ``1 - CCC`` of valence and arousal over the batch (``CCCLoss``); Case II (Eq. 9):
  identity cross entropy, attribute BCE.
* Coupling (§3.1.2): ``co_annotation`` (a label transform in the training step),
  ``soft_co_annotation`` (Eq. 5-7), ``distribution_matching`` (Eq. 3-4, or Eq. 10-11 for
  identities x attributes with an explicit ``attribute_relatedness`` [ids, attributes]).
* Data (§4.4): ``fit`` on ``{source: batch}`` from ``make_multi_source_dataset`` -- one
  batch of the VA-, AU- and EXPR-sets per step, concatenated. Each source's AU columns
  (``label_au_names[source]``, from its manifest) are mapped by name onto the model's AU
  vocabulary; an AU a source does not annotate gets mask 0 there.

The model is functional on plain normalised images, so ``export_saved_model`` serves it
unchanged (``expression_probs``, ``au_probs``, ``valence``, ``arousal``).
"""

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.backbones.facebehaviornet import build_backbone
from fermtl_tf.knowledge.relatedness import FACEBEHAVIORNET_AUS
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.losses.ccc import CCCLoss
from fermtl_tf.losses.coupling import CoAnnotation, DistributionMatchingLoss, SoftCoAnnotationLoss
from fermtl_tf.losses.masked import MaskedBinaryCrossEntropyPerImage
from fermtl_tf.methods.facebehaviornet.config import COUPLING_LOSSES
from fermtl_tf.training.multitask import MultiTaskModel, merge_sources

#: Tasks and the output(s) of their head.
TASK_OUTPUTS = {"expression": "expression_logits", "au": "au_logits", "va": "va",
                "identity": "identity_logits", "attributes": "attributes_logits"}
#: Label keys that differ in width between datasets (dropped or remapped before merging).
_AU_KEYS = ("au", "au_mask", "au_intensity")


def _heads(features, head_sizes):
    """Linear heads on the shared features: {output name: tensor}."""
    outputs = {}
    for task, size in head_sizes.items():
        if task not in TASK_OUTPUTS:
            raise ValueError(f"unknown FaceBehaviorNet task {task!r}; "
                             f"known: {sorted(TASK_OUTPUTS)}")
        logits = keras.layers.Dense(2 if task == "va" else int(size), dtype="float32",
                                    name=TASK_OUTPUTS[task])(features)
        if task == "va":
            outputs["valence"] = keras.layers.Identity(name="valence")(logits[:, 0])
            outputs["arousal"] = keras.layers.Identity(name="arousal")(logits[:, 1])
        else:
            outputs[TASK_OUTPUTS[task]] = logits
    return outputs


@keras.saving.register_keras_serializable(package="fermtl_tf")
class FaceBehaviorNet(MultiTaskModel):
    """Shared backbone + linear task heads, trained with Eq. 2 and the coupling losses.

    Args:
        head_sizes: ``{task: outputs}`` for tasks among :data:`TASK_OUTPUTS` (``va`` may
            be given any size; it always has 2 outputs). One task = ST-FaceBehaviorNet.
        emotions: expression vocabulary (names, label order), for the relatedness tables.
        au_names: the AU vocabulary of the AU head (default the 17 of footnote 2).
        label_au_names: AU column names of the data: a list (every source) or
            ``{source name: list}``; None means the data's columns are ``au_names``.
        backbone, width, backbone_weights, input_size: the shared network
            (``facebehaviornet`` | ``vgg16`` | ``resnet50`` | ``densenet121``).
        coupling: None or ``{"name", "source", "weights", "observational",
            "reweight_observational", "direction"}`` (see ``RelatednessCoupling``).
        attribute_relatedness: Case II's ``[identities, attributes]`` p(attr | id)
            (Eq. 10), needed by ``distribution_matching`` when the heads are identity
            and attributes.
        task_weights: lambda of each task loss (Eq. 2 / Eq. 9), default 1.

    Example:
        >>> model = FaceBehaviorNet({"expression": 7, "au": 17, "va": 2}, width=8,
        ...                         coupling={"name": "sca_dm", "source": "cognitive"})
        >>> sorted(model(images))   # images [B, 112, 112, 3] in [-1, 1]
        ['arousal', 'au_logits', 'expression_logits', 'valence']
    """

    def __init__(self, head_sizes=None, emotions=BASIC7, au_names=FACEBEHAVIORNET_AUS,
                 label_au_names=None, backbone="facebehaviornet", width=64,
                 backbone_weights=None, input_size=112, coupling=None,
                 attribute_relatedness=None, task_weights=None, **kwargs):
        head_sizes = dict(head_sizes or {"expression": len(emotions), "au": len(au_names),
                                         "va": 2})
        if "au" in head_sizes:
            head_sizes["au"] = len(au_names)
        coupling = self._check_coupling(coupling, head_sizes, attribute_relatedness)
        weights = {task: 1.0 for task in head_sizes}
        weights.update({k: float(v) for k, v in (task_weights or {}).items()})
        for loss in COUPLING_LOSSES.get((coupling or {}).get("name"), ()):
            weights[loss] = float(coupling["weights"].get(loss, 1.0))
        network = build_backbone(backbone, (int(input_size), int(input_size), 3), int(width),
                                 backbone_weights)
        images = keras.Input((int(input_size), int(input_size), 3), name="image")
        outputs = _heads(network(images), head_sizes)
        super().__init__(inputs=images, outputs=outputs, task_weights=weights, **kwargs)
        self.head_sizes = head_sizes
        self.emotions = tuple(emotions)
        self.au_names = tuple(au_names)
        self.label_au_names = label_au_names
        self.backbone_name, self.width = backbone, int(width)
        self.backbone_weights, self.input_size = backbone_weights, int(input_size)
        self.coupling = coupling
        self.attribute_relatedness = (None if attribute_relatedness is None
                                      else np.asarray(attribute_relatedness, np.float32))
        if "au" in self.task_loss_fns:
            self.task_loss_fns["au"] = MaskedBinaryCrossEntropyPerImage(name="au_loss")
        self.va_loss = CCCLoss(name="va_loss")
        self._build_coupling()

    @staticmethod
    def _check_coupling(coupling, head_sizes, attribute_relatedness):
        if not coupling or coupling.get("name", "none") == "none":
            return None
        name = coupling["name"]
        if name not in COUPLING_LOSSES:
            raise ValueError(f"unknown coupling {name!r}; known: {sorted(COUPLING_LOSSES)}")
        coupling = {"source": "cognitive", "weights": {}, "observational": None,
                    "reweight_observational": True, "direction": "p_log_q",
                    "form": "bernoulli", **coupling}
        case_two = {"identity", "attributes"} <= set(head_sizes)
        if case_two:
            if name != "distribution_matching" or attribute_relatedness is None:
                raise ValueError("Case II (identity + attributes) supports coupling "
                                 "'distribution_matching' with an attribute_relatedness matrix")
        elif not {"expression", "au"} <= set(head_sizes):
            raise ValueError(f"coupling {name!r} needs the expression and au heads, "
                             f"got {sorted(head_sizes)}")
        return coupling

    def _build_coupling(self):
        coupling = self.coupling or {}
        name = coupling.get("name")
        self.co_annotation = self.soft_co_annotation = self.distribution_matching = None
        if name is None:
            return
        source, direction = coupling["source"], coupling["direction"]
        if self.attribute_relatedness is not None and "identity" in self.head_sizes:
            self.distribution_matching = DistributionMatchingLoss(
                relatedness=self.attribute_relatedness, direction=direction,
                form=coupling["form"])
            return
        if name == "co_annotation":
            self.co_annotation = CoAnnotation(
                self.emotions, self.au_names, source,
                reweight_observational=coupling["reweight_observational"])
        if "soft_co_annotation" in COUPLING_LOSSES[name]:
            observational = "weighted" if coupling["reweight_observational"] else "binary"
            self.soft_co_annotation = SoftCoAnnotationLoss(
                self.emotions, self.au_names, source, observational, direction)
        if "distribution_matching" in COUPLING_LOSSES[name]:
            self.distribution_matching = DistributionMatchingLoss(
                self.emotions, self.au_names, source, coupling["observational"],
                direction=direction, form=coupling["form"])

    # --- data -----------------------------------------------------------------------

    def _source_au_names(self, source):
        names = self.label_au_names
        if names is None or isinstance(names, (list, tuple)):
            return None if names is None else list(names)
        if source is None and len(names) == 1:
            return list(next(iter(names.values())))
        if source not in names:
            raise KeyError(f"FaceBehaviorNet: no AU names for data source {source!r}; "
                           f"label_au_names has {sorted(names)}")
        return list(names[source])

    def map_aus(self, batch, source=None):
        """``batch`` with ``au``/``au_mask`` on the model's AU vocabulary (by name).

        AUs of the model the source lacks get label 0, mask 0; ``au_intensity`` (a
        dataset-specific width) is dropped. Without an AU head the AU keys are dropped.
        """
        batch = dict(batch)
        if "au" not in self.head_sizes or "au" not in batch:
            return {k: v for k, v in batch.items() if k not in _AU_KEYS}
        batch.pop("au_intensity", None)
        names = self._source_au_names(source)
        if names is None:
            if batch["au"].shape[-1] != len(self.au_names):
                raise ValueError(f"source {source!r} has {batch['au'].shape[-1]} AU columns "
                                 f"but the model {len(self.au_names)}; give label_au_names")
            return batch
        columns = [names.index(au) if au in names else len(names) for au in self.au_names]
        for key in ("au", "au_mask"):
            values = tf.cast(batch[key], tf.float32)
            padded = tf.concat([values, tf.zeros_like(values[:, :1])], axis=1)
            batch[key] = tf.gather(padded, columns, axis=1)
        return batch

    def prepare_batch(self, data):
        """Map every source's AUs onto the model's, then concatenate the sources (§4.4)."""
        if "image" in data:
            return self.map_aus(data)
        return merge_sources({name: self.map_aus(batch, name) for name, batch in data.items()})

    # --- losses ---------------------------------------------------------------------

    def compute_task_losses(self, batch, outputs):
        """Eq. 2 (or Eq. 9) task losses plus the coupling losses of the config."""
        losses = super().compute_task_losses(batch, outputs)
        if "va" in self.head_sizes:
            truth = tf.stack([batch["valence"], batch["arousal"]], axis=-1)
            predicted = tf.stack([outputs["valence"], outputs["arousal"]], axis=-1)
            losses["va"] = self.va_loss(truth, predicted, sample_weight=batch["va_mask"])
        if self.soft_co_annotation is not None:
            losses["soft_co_annotation"] = self.soft_co_annotation(
                batch["au"], outputs["expression_logits"], sample_weight=batch["au_mask"])
        if self.distribution_matching is not None:
            if "identity" in self.head_sizes:
                pair = (outputs["identity_logits"], outputs["attributes_logits"])
            else:
                pair = (outputs["expression_logits"], outputs["au_logits"])
            losses["distribution_matching"] = self.distribution_matching(*pair)
        return losses

    def training_labels(self, batch):
        """Co-annotation (§3.1.2) adds labels to the training batch only."""
        return batch if self.co_annotation is None else self.co_annotation(batch)

    # --- serialisation --------------------------------------------------------------

    @property
    def output_au_names(self):
        """AU names of ``au_logits`` columns (export metadata)."""
        return list(self.au_names) if "au" in self.head_sizes else []

    def get_config(self):
        task_weights = {k: v for k, v in self.task_weights.items() if k in self.head_sizes}
        return {
            "name": self.name, "trainable": self.trainable,
            "head_sizes": dict(self.head_sizes), "emotions": list(self.emotions),
            "au_names": list(self.au_names), "label_au_names": self.label_au_names,
            "backbone": self.backbone_name, "width": self.width,
            "backbone_weights": self.backbone_weights, "input_size": self.input_size,
            "coupling": self.coupling,
            "attribute_relatedness": (None if self.attribute_relatedness is None
                                      else self.attribute_relatedness.tolist()),
            "task_weights": task_weights,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
