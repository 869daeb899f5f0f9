"""Config sections of Hu et al. 2018: ``sharing: {name: stacked}`` and ``coupling: {name: ada}``.

Plain dataclasses (no TensorFlow), registered in ``fermtl_tf.training.config.VARIANTS`` so
that configs validate before TensorFlow is imported; the model is
``fermtl_tf.models.hu2018.Hu2018Model``. Example::

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
    """

    method: Literal["laf", "tucker", "tt"] = "laf"
    strength: float = 1e-3
    svd: Literal["exact", "randomized"] = "exact"
    rank: int | None = None
    gammas: list[float] | None = None
    include_shortcuts: bool = False


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
    with ``weight``.
    """

    name: str = "ada"
    weight: float = 1.0
    reversal_scale: float = 1.0
    hidden_units: list[int] = dataclasses.field(default_factory=lambda: [128, 64])
