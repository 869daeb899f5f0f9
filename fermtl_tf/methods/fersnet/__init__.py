"""FERSNet (Zhao et al.): expression recognition and synthesis sharing features through
ConvFLUs. TF-free: the builder and hooks are imported only when a run starts."""

from fermtl_tf.methods.fersnet.config import SMOKE_CONFIG, FERSNetConfig, check
from fermtl_tf.methods.spec import MethodSpec

SPEC = MethodSpec(
    name="fersnet",
    config=FERSNetConfig,
    builder="fermtl_tf.methods.fersnet.build:build_model",
    tasks=("expression",),
    summary="FERSNet: FER + conditional-GAN expression synthesis joined by ConvFLUs",
    paper="zhao_fersnet_convflu_synthesis.md",
    compile_kwargs="fermtl_tf.methods.fersnet.build:compile_kwargs",
    callbacks="fermtl_tf.methods.fersnet.build:callbacks",
    train_dataset="fermtl_tf.methods.fersnet.build:train_dataset",
    export_endpoints="fermtl_tf.methods.fersnet.build:export_endpoints",
    prepare_data="fermtl_tf.methods.fersnet.augmentation:prepare_fes_da",
    check=check,
    smoke_config=SMOKE_CONFIG,
)
