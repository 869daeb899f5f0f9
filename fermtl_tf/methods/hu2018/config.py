"""Config of Hu et al. 2018: ``method: {name: hu2018}``, ``sharing: {name: stacked}`` and
``coupling: {name: ada}``.

Plain dataclasses (no TensorFlow), declared in the method's ``SPEC`` so that configs
validate before TensorFlow is imported; the model is
``fermtl_tf.methods.hu2018.model.Hu2018Model``. Example::

    method: {name: hu2018}
    sharing:
      name: stacked
      trace_norm: {method: laf, strength: 1.0e-3, svd: exact}   # or null (no trace norm)
      hard_shared_layers: 0        # RN(k): 0, 6, 14, 26, 32 for ResNet-34
      cross_stitch: false
    coupling: {name: ada, weight: 1.0, reversal_scale: 1.0}
"""

import dataclasses
from typing import Literal


@dataclasses.dataclass
class TraceNormConfig:
    """``TensorTraceNorm`` options (Hu et al. 2018, §2.2, Eqs. 1-3).

    ``strength`` is the paper's single sharing hyper-parameter; ``gammas`` the per-unfolding
    weights of Eqs. 2-3 (default all 1); ``include_shortcuts`` also regularises the 1x1
    projection shortcuts, which the paper's "33 convolutional layers" leave out.
    ``normalize: reference`` (default) averages over the unfoldings and over the regularised
    layers as the authors' TNRDMTL code does; ``sum`` is the plain sum of Eqs. 2-3 on every
    layer. ``svd``: ``randomized`` is certified within ``tolerance`` of the exact norm (else
    exact); ``randomized_fixed`` the top-``rank`` estimate (docs/FIDELITY.md).
    """

    method: Literal["laf", "tucker", "tt"] = "laf"
    strength: float = 1e-3
    svd: Literal["exact", "randomized", "randomized_fixed"] = "exact"
    rank: int | None = None
    gammas: list[float] | None = None
    include_shortcuts: bool = False
    normalize: Literal["reference", "sum"] = "reference"
    tolerance: float = 0.01
    gram_dtype: Literal["float64"] | None = None


@dataclasses.dataclass
class StackedSharing:
    """T stacked task networks (Hu et al. 2018, §2.2): Table 4's every column.

    No trace norm, no hard sharing, no cross-stitch = "Single task" (T independent nets).
    """

    name: str = "stacked"
    trace_norm: TraceNormConfig | None = None
    hard_shared_layers: int = 0
    cross_stitch: bool = False
    implementation: Literal["auto", "loop", "grouped"] = "auto"


@dataclasses.dataclass
class AdaCoupling:
    """Adversarial domain alignment (Hu et al. 2018, §2.3, Eq. 4).

    A dataset-identity MLP (pooled features - ``hidden_units`` - T) behind a gradient
    reversal layer of strength ``reversal_scale``; its cross-entropy enters the total loss
    with ``weight``. ``reversal_schedule: ganin`` ramps the reversal strength from 0 to
    ``reversal_scale`` as 2 / (1 + exp(-gamma p)) - 1 over training (Ganin & Lempitsky).
    """

    name: str = "ada"
    weight: float = 1.0
    reversal_scale: float = 1.0
    reversal_schedule: Literal["constant", "ganin"] = "constant"
    gamma: float = 10.0
    hidden_units: list[int] = dataclasses.field(default_factory=lambda: [128, 64])


@dataclasses.dataclass
class Hu2018Method:
    """Two stacked task networks, expression then landmarks (§2.2, §2.4); further options
    are the ``sharing`` (stacked) and ``coupling`` (none | ada) sections."""

    name: str = "hu2018"
    # §4.1: landmark coordinates whitened (training mean shape subtracted, one scale)
    whiten_landmarks: bool = True


#: Task order on the stacked axis; the multi-source batch names its sources the same.
TASK_ORDER = ("expression", "landmarks")


def check(config):
    """Cross-field rules of Hu et al. 2018 (yields ``(key, message)``)."""
    if sorted(config.tasks) != sorted(TASK_ORDER):
        yield "tasks", (f"method 'hu2018' trains exactly {list(TASK_ORDER)}, "
                        f"got {sorted(config.tasks)}")
    if config.sharing.name != "stacked":
        yield "sharing.name", f"method 'hu2018' uses sharing 'stacked', got {config.sharing.name!r}"
    if config.coupling.name not in ("none", "ada"):
        yield "coupling.name", (f"method 'hu2018' supports coupling 'none' or 'ada', "
                                f"got {config.coupling.name!r}")
    if config.backbone.sync_batch_norm:
        yield "backbone.sync_batch_norm", ("the stacked batch norm keeps per-replica "
                                           "statistics; set it to false")
    names = [s.name or s.folder.rstrip("/").split("/")[-1] for s in config.data.train]
    if len(names) > 1 and names[0] != "expression":
        yield "data.train", (f"list the source named 'expression' first (its manifest gives "
                             f"the vocabulary), then 'landmarks'; got {names}")


#: A tiny run on a SynthFace folder (``$SYNTHFACE``): what the conformance tests train.
SMOKE_CONFIG = {
    "method": {"name": "hu2018"},
    "data": {"train": [{"folder": "$SYNTHFACE", "name": "expression", "batch_size": 4},
                       {"folder": "$SYNTHFACE", "name": "landmarks", "batch_size": 4}],
             "image_size": [32, 32], "shuffle_buffer": 1},
    "backbone": {"name": "resnet", "depth": 18, "width": 4, "stem": "compact"},
    "tasks": {"expression": {}, "landmarks": {}},
    "sharing": {"name": "stacked", "trace_norm": {"method": "laf", "strength": 1e-3}},
    "coupling": {"name": "ada", "weight": 0.5},
    "optimizer": {"name": "momentum", "learning_rate": 0.01},
}
