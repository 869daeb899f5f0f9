"""Single-task ResNet baseline (Hu et al. 2018, Table 4 "RN"): one backbone, one head."""

from fermtl_tf.methods.baseline.config import SMOKE_CONFIG, BaselineMethod, check
from fermtl_tf.methods.spec import MethodSpec

SPEC = MethodSpec(
    name="baseline",
    config=BaselineMethod,
    builder="fermtl_tf.methods.baseline.build:build_model",
    tasks=("expression", "landmarks"),
    summary="single-task ResNet-18/34 baseline (expression or landmarks)",
    paper="hu2018_trace_norm_mtl_ada_lsemsw.md (Table 4, RN)",
    check=check,
    smoke_config=SMOKE_CONFIG,
)
