"""Hu et al. 2018: stacked task networks, tensor trace-norm soft sharing, ADA (Table 4-7)."""

from fermtl_tf.methods.hu2018.config import (
    SMOKE_CONFIG,
    TASK_ORDER,
    AdaCoupling,
    Hu2018Method,
    StackedSharing,
    check,
)
from fermtl_tf.methods.spec import MethodSpec

SPEC = MethodSpec(
    name="hu2018",
    config=Hu2018Method,
    builder="fermtl_tf.methods.hu2018.build:build_model",
    tasks=TASK_ORDER,
    summary="stacked ResNets with trace-norm soft sharing / RN(k) / cross-stitch, optional ADA",
    paper="hu2018_trace_norm_mtl_ada_lsemsw.md",
    variants={"sharing": {"stacked": StackedSharing}, "coupling": {"ada": AdaCoupling}},
    losses=("ada",),
    check=check,
    smoke_config=SMOKE_CONFIG,
    callbacks="fermtl_tf.methods.hu2018.build:callbacks",
)
