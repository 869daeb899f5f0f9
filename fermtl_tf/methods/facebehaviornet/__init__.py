"""FaceBehaviorNet (Kollias et al.): expressions, AUs, valence/arousal on one network,
coupled by co-annotation, soft co-annotation and distribution matching (Tables 3-8)."""

from fermtl_tf.methods.facebehaviornet.config import (
    COUPLING_LOSSES,
    SMOKE_CONFIG,
    TASKS,
    FaceBehaviorNetMethod,
    RelatednessCoupling,
    check,
)
from fermtl_tf.methods.spec import MethodSpec

SPEC = MethodSpec(
    name="facebehaviornet",
    config=FaceBehaviorNetMethod,
    builder="fermtl_tf.methods.facebehaviornet.build:build_model",
    tasks=TASKS,
    summary="one network, expression/AU/VA heads coupled by (soft) co-annotation and "
            "distribution matching",
    paper="kollias_facebehaviornet_distribution_matching.md",
    variants={"coupling": {name: RelatednessCoupling for name in COUPLING_LOSSES}},
    losses=("soft_co_annotation", "distribution_matching"),
    check=check,
    smoke_config=SMOKE_CONFIG,
    export_metadata="fermtl_tf.methods.facebehaviornet.build:export_metadata",
)
