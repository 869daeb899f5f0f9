"""Config sections of FaceBehaviorNet (Kollias et al., "Distribution Matching for
Heterogeneous Multi-Task Learning"): tasks ``au``, ``va``, ``identity``, ``attributes``,
``sharing: {name: facebehaviornet}`` and the relatedness couplings.

Plain dataclasses (no TensorFlow), registered in ``fermtl_tf.training.config`` so that
configs validate before TensorFlow is imported; the model is
``fermtl_tf.models.facebehaviornet.FaceBehaviorNet``. Example::

    backbone: {name: facebehaviornet, width: 64}     # or vgg16 | resnet50 | densenet121
    tasks: {expression: {num_classes: 7}, au: {}, va: {}}
    sharing: {name: facebehaviornet}
    coupling:
      name: sca_dm               # none | co_annotation | soft_co_annotation |
                                 # distribution_matching | sca_dm
      source: cognitive          # Table 1 column: cognitive (Du et al.) | affwild2
      weights: {soft_co_annotation: 1.0, distribution_matching: 1.0}
"""

import dataclasses
from typing import Literal


@dataclasses.dataclass
class AUTask:
    """17 AU logits -> sigmoid, Eq. 2's per-image BCE over annotated AUs.

    ``au_names``: the model's AU vocabulary (null: ``FACEBEHAVIORNET_AUS``, the 17 AUs of
    footnote 2). Dataset AU columns are mapped to it by name; AUs a dataset lacks are
    unlabelled (mask 0) for its images.
    """

    au_names: list[str] | None = None


@dataclasses.dataclass
class VATask:
    """Valence and arousal, linear outputs, loss 1 - CCC (Eq. 2)."""

    loss: Literal["ccc"] = "ccc"


@dataclasses.dataclass
class IdentityTask:
    """Case II (§3.2, Eq. 9): identity logits -> softmax cross entropy."""

    num_classes: int | None = None  # None: max identity in the training data + 1


@dataclasses.dataclass
class AttributesTask:
    """Case II (§3.2, Eq. 9): attribute logits -> sigmoid, BCE over annotated attributes."""

    num_attributes: int | None = None  # None: the manifest's num_attributes


@dataclasses.dataclass
class FaceBehaviorNetSharing:
    """Every head pooled from one feature space (§3.3, Fig. 1): hard sharing."""

    name: str = "facebehaviornet"


@dataclasses.dataclass
class RelatednessCoupling:
    """The coupling losses of §3.1.2 (and §3.2.2 for Case II).

    Registered under ``co_annotation``, ``soft_co_annotation``, ``distribution_matching``
    and ``sca_dm`` (soft co-annotation + distribution matching, Table 3's best row).

    Args:
        source: relatedness of Table 1, ``cognitive`` (Du et al., [15]) or ``affwild2``;
            ignored by Case II's distribution matching (p(attr | id) from the data).
        weights: lambda of each coupling loss, keys ``soft_co_annotation`` and
            ``distribution_matching`` (default 1).
        observational: ``binary`` / ``weighted`` observational AUs in distribution
            matching (null: Eq. 3's binary for cognitive, the weights for affwild2).
        reweight_observational: co-annotation weights observational AUs by ``w``.
        direction: ``p_log_q`` (Eq. 4/7 as printed) or ``q_log_p`` (distillation).
    """

    name: str = "sca_dm"
    source: Literal["cognitive", "affwild2"] = "cognitive"
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    observational: Literal["binary", "weighted"] | None = None
    reweight_observational: bool = True
    direction: Literal["p_log_q", "q_log_p"] = "p_log_q"


#: Coupling names -> the coupling losses each switches on (co-annotation is a label
#: transform, not a loss).
COUPLING_LOSSES = {
    "co_annotation": (),
    "soft_co_annotation": ("soft_co_annotation",),
    "distribution_matching": ("distribution_matching",),
    "sca_dm": ("soft_co_annotation", "distribution_matching"),
}
