"""The ``bp4d_plus`` source: BP4D+ (multimodal spontaneous emotion) in the BP4D layout.

Same files as ``bp4d`` (``AU_OCC/F001_T1.csv``, ``F001/T1/<frame>.jpg``); the default AU
subset is the 10 AUs of FERA 2017 (Kollias et al., FaceBehaviorNet §5.1).
"""

from fermtl_tf.data.sources.bp4d import Bp4dSource


class Bp4dPlusSource(Bp4dSource):
    name = "bp4d_plus"
    description = "BP4D+: per-frame AU occurrence (FERA 2017 AUs), 3 subject folds"
    default_aus = "fera2017"


SOURCE = Bp4dPlusSource()
