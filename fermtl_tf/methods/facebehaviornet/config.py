"""Config of FaceBehaviorNet (Kollias et al., "Distribution Matching for Heterogeneous
Multi-Task Learning"): ``method: {name: facebehaviornet}`` and the relatedness couplings.

Plain dataclasses (no TensorFlow), declared in the method's ``SPEC`` so that configs
validate before TensorFlow is imported; the model is
``fermtl_tf.methods.facebehaviornet.model.FaceBehaviorNet``. Example::

    method: {name: facebehaviornet}
    backbone: {name: facebehaviornet, width: 64}     # or vgg16 | resnet50 | densenet121
    tasks: {expression: {num_classes: 7}, au: {}, va: {}}
    sharing: {name: hard}
    coupling:
      name: sca_dm               # none | co_annotation | soft_co_annotation |
                                 # distribution_matching | sca_dm
      source: cognitive          # Table 1 column: cognitive (Du et al.) | affwild2
      weights: {soft_co_annotation: 1.0, distribution_matching: 1.0}
"""

import dataclasses
from typing import Literal


@dataclasses.dataclass
class FaceBehaviorNetMethod:
    """Every head pooled from one shared network (§3.3, Fig. 1); options are the
    backbone, the tasks and the ``coupling`` section."""

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
        form: distribution matching as the per-AU Bernoulli cross entropy
            (``bernoulli``, default: −Σ[p log q + (1 − p) log(1 − q)]) or Eq. 4 as printed
            (``printed``: −Σ p log q, minimised by switching every AU off; docs/FIDELITY.md).
    """

    name: str = "sca_dm"
    source: Literal["cognitive", "affwild2"] = "cognitive"
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    observational: Literal["binary", "weighted"] | None = None
    reweight_observational: bool = True
    direction: Literal["p_log_q", "q_log_p"] = "p_log_q"
    form: Literal["bernoulli", "printed"] = "bernoulli"


#: Coupling names -> the coupling losses each switches on (co-annotation is a label
#: transform, not a loss).
COUPLING_LOSSES = {
    "co_annotation": (),
    "soft_co_annotation": ("soft_co_annotation",),
    "distribution_matching": ("distribution_matching",),
    "sca_dm": ("soft_co_annotation", "distribution_matching"),
}


#: Tasks FaceBehaviorNet has heads for (Case I: expression, au, va; Case II: identity,
#: attributes).
TASKS = ("expression", "au", "va", "identity", "attributes")


def check(config):
    """Cross-field rules of FaceBehaviorNet (yields ``(key, message)``)."""
    if config.sharing.name != "hard":
        yield "sharing.name", f"method 'facebehaviornet' uses sharing 'hard', got {config.sharing.name!r}"
    if config.backbone.name == "resnet":
        yield "backbone.name", ("method 'facebehaviornet' uses backbone facebehaviornet | "
                                "vgg16 | resnet50 | densenet121")
    height, width = config.data.image_size
    if height != width:
        yield "data.image_size", f"FaceBehaviorNet needs square images, got {[height, width]}"


#: A tiny run on a SynthFace folder (``$SYNTHFACE``): what the conformance tests train.
SMOKE_CONFIG = {
    "method": {"name": "facebehaviornet"},
    "data": {"train": [
        {"folder": "$SYNTHFACE", "name": "va", "batch_size": 4, "keep_tasks": ["va"]},
        {"folder": "$SYNTHFACE", "name": "au", "batch_size": 4, "keep_tasks": ["au"]},
        {"folder": "$SYNTHFACE", "name": "expr", "batch_size": 4, "keep_tasks": ["expression"]}],
        "image_size": [32, 32], "shuffle_buffer": 1},
    "backbone": {"name": "facebehaviornet", "width": 4},
    "tasks": {"va": {}, "au": {}, "expression": {}},
    "sharing": {"name": "hard"},
    "coupling": {"name": "sca_dm", "source": "cognitive"},
    "optimizer": {"name": "momentum", "learning_rate": 0.01},
}
