"""MML: AU-assisted meta multi-task learning for compound expressions (Li et al. 2023)."""

from fermtl_tf.methods.meta_mtl.config import SMOKE_CONFIG, MetaMTLConfig
from fermtl_tf.methods.spec import MethodSpec

SPEC = MethodSpec(
    name="meta_mtl",
    config=MetaMTLConfig,
    builder="fermtl_tf.methods.meta_mtl.build:build_model",
    tasks=("expression", "au"),
    summary="MML: ResNet-34 base net, per-sample meta weights of AU and alignment losses "
            "(three-phase look-ahead step), RAF-CE compound expressions",
    paper="li2023_mml_compound_au_meta.md",
    serving_model="fermtl_tf.methods.meta_mtl.build:serving_model",
    callbacks="fermtl_tf.methods.meta_mtl.build:callbacks",
    smoke_config=SMOKE_CONFIG,
)
