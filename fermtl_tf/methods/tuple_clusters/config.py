"""Config of 2B(N+M)Softmax and its baselines (Liu et al. 2017): ``method: {name: tuple_clusters}``.

TensorFlow-free. The four rows of Tables 3 and 5 are two switches:

==================  ==========  ===============
row                 branches    metric_loss
==================  ==========  ===============
1B(N+1)Softmax      1B          n_plus_1
2B(N+1)Softmax      2B          n_plus_1
1B(N+M)Softmax      1B          n_plus_m
2B(N+M)Softmax      2B          n_plus_m
==================  ==========  ===============

``metric_loss: none`` is softmax alone (the FER2013 pre-training of §5.2 and the
"softmax only" comparison).
"""

import dataclasses
from typing import Literal


@dataclasses.dataclass
class InceptionFERNetwork:
    """The network of §4 / Fig. 4 (widths not given in the paper: ours, see FIDELITY).

    Attributes:
        width: multiplier of every convolution's channels (1.0 = Mollahosseini et al.).
        batch_norm: batch norm after each convolution (not in either paper).
        grayscale: convert the pipeline's RGB images to one grey channel (§5.1).
        ec_units: FC1, FC2 of the expression classification (EC) branch.
        ml_units: FC3, the first layer of the metric learning (ML) branch (D_input).
        connect_units: FC4 = P1'FC2 + P2'FC3 (Eq. 13), D_output.
        embedding_dim: the ML branch's second layer, the embedding f of the metric loss.
        dropout: dropout rate after FC1-FC4 (0 = none).
        weight_decay: L2 weight decay of the kernels (1e-4 in pre-training, §5.2).
    """

    width: float = 1.0
    batch_norm: bool = False
    grayscale: bool = True
    ec_units: list[int] = dataclasses.field(default_factory=lambda: [4096, 1024])
    ml_units: int = 1024
    connect_units: int = 1024
    embedding_dim: int = 256
    dropout: float = 0.0
    weight_decay: float = 0.0


@dataclasses.dataclass
class TupleClustersMethod:
    """Options of ``method: {name: tuple_clusters, ...}``.

    Attributes:
        branches: ``2B`` (EC + ML branches joined by the connecting layer, §4) or ``1B``
            (both losses after the EC branch, §5.3's baselines).
        metric_loss: ``n_plus_m`` (Eq. 3 / Eq. 10), ``n_plus_1`` (Eq. 1) or ``none``.
        threshold: ``adaptive`` (Eq. 5-10, learned quadratic threshold) or ``fixed``
            (Eq. 3 with ``reference_distance`` T and ``margin`` tau).
        reference_distance: T of Eq. 3; initial T of the adaptive form.
        margin: tau (Eq. 1 and Eq. 3); the adaptive hinge uses tau/2 (1 in Eq. 10).
        num_positives: M, the size of the positive set (6 for CK+/SFEW, 5 for MMI, 3 for
            Multi-PIE, §5.2).
        num_negatives: N, the size of the negative set (same values).
        query_in_positives: the query is one of the M positives, so M - 1 others are
            drawn (§5.2's "12 x (6 + 6) = 144 images" per iteration); False draws M others.
        queries_per_batch: X, the tuples per iteration ("tuple-size is set to 12").
        alpha: weight of the metric loss; total = softmax + alpha * metric ("set equally").
        sign_a, sign_b, positive_label: sign conventions of Eq. 7-10 (docs/FIDELITY.md):
            A = sign_a L_A'L_A, B = sign_b L_B'L_B, l(positive) = positive_label.
        rank: rows of L_A and L_B (default: ``network.embedding_dim``).
        network: the network's sizes.
    """

    name: str = "tuple_clusters"
    branches: Literal["2B", "1B"] = "2B"
    metric_loss: Literal["n_plus_m", "n_plus_1", "none"] = "n_plus_m"
    threshold: Literal["adaptive", "fixed"] = "adaptive"
    reference_distance: float = 2.0
    margin: float = 2.0
    num_positives: int = 6
    num_negatives: int = 6
    query_in_positives: bool = True
    queries_per_batch: int = 12
    alpha: float = 1.0
    sign_a: Literal[1, -1] = 1
    sign_b: Literal[-1, 1] = -1
    positive_label: Literal[1, -1] = 1
    rank: int | None = None
    network: InceptionFERNetwork = dataclasses.field(default_factory=InceptionFERNetwork)

    @property
    def positives_per_query(self):
        """Positives the sampler draws besides the query."""
        return self.num_positives - 1 if self.query_in_positives else self.num_positives


def check(config):
    """Cross-field rules (yields ``(key, message)``); ``config`` is the experiment config."""
    method = config.method
    if method.num_negatives < 1:
        yield "method.num_negatives", f"need at least one negative, got {method.num_negatives}"
    if method.metric_loss != "none" and method.positives_per_query < 1:
        yield "method.num_positives", (
            f"num_positives={method.num_positives} leaves no positive besides the query "
            f"(query_in_positives={method.query_in_positives})")
    if method.threshold == "fixed" and method.reference_distance <= method.margin / 2:
        yield "method.reference_distance", (
            f"T={method.reference_distance} <= tau/2={method.margin / 2}: no positive can "
            "satisfy Eq. 3 (its ball T - tau/2 is empty)")
    if "expression" not in config.tasks:
        yield "tasks", "method 'tuple_clusters' trains the expression task"


#: A tiny run on a SynthFace folder (``$SYNTHFACE``): what the conformance tests train.
SMOKE_CONFIG = {
    "method": {"name": "tuple_clusters", "num_positives": 2, "num_negatives": 2,
               "queries_per_batch": 2,
               "network": {"width": 0.125, "ec_units": [32, 16], "ml_units": 16,
                           "connect_units": 16, "embedding_dim": 8}},
    "data": {"train": [{"folder": "$SYNTHFACE", "batch_size": 6}],
             "validation": [{"folder": "$SYNTHFACE", "split": "val", "batch_size": 4}],
             "image_size": [48, 48], "normalization": "per_image", "shuffle_buffer": 1},
    "tasks": {"expression": {}},
    "optimizer": {"name": "adam", "learning_rate": 1e-3},
}
