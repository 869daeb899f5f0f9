"""2B(N+M)Softmax (Liu et al. 2017): softmax + identity-aware (N+M)-tuple clusters loss."""

from fermtl_tf.methods.spec import MethodSpec
from fermtl_tf.methods.tuple_clusters.config import SMOKE_CONFIG, TupleClustersMethod, check

SPEC = MethodSpec(
    name="tuple_clusters",
    config=TupleClustersMethod,
    builder="fermtl_tf.methods.tuple_clusters.build:build_model",
    tasks=("expression",),
    summary="inception FER net, EC + ML branches, softmax + (N+M)-tuple clusters / "
            "(N+1)-tuplet loss on identity-aware tuples (1B/2B variants)",
    paper="liu2017_nm_tuple_clusters_identity_aware.md",
    serving_model="fermtl_tf.methods.tuple_clusters.build:serving_model",
    train_dataset="fermtl_tf.methods.tuple_clusters.build:train_dataset",
    check=check,
    smoke_config=SMOKE_CONFIG,
)
