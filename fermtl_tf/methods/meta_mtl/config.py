"""Configuration of the MML method (Li et al. 2023) and its ablations (Tables 2-3).

Plain dataclasses (no TensorFlow): the ``method:`` section of an experiment YAML::

    method: {name: meta_mtl, variant: mml, statistics: wild}

``variant`` selects the loss of Table 2/3's rows:

* ``stl`` -- expression only (L_emo);
* ``mtl`` -- traditional MTL, ``L_emo + rho L_AU`` (Eq. 3);
* ``am`` -- alignment loss alone, ``L_emo + rho L_AU + rho_am L_AM`` (Eq. 10);
* ``mal`` -- meta weights without alignment, ``L_emo + omega^AU L_AU`` (§5.3 ablation);
* ``mal_emo_au`` -- the other ablation net, ``omega^emo L_emo + omega^AU L_AU``;
* ``mml`` -- the method, ``L_emo + omega^AU L_AU + omega^AM L_AM`` (Eq. 11).

``statistics: lab`` is Table 3's "Lab [6, 7]" row: Du et al.'s observed AUs with weight 1
and the sigmoid outside the mixture (§5.3).
"""

import dataclasses
from typing import Literal

#: variant -> (loss terms, meta-weighted terms).
VARIANTS = {
    "stl": (("emo",), ()),
    "mtl": (("emo", "au"), ()),
    "am": (("emo", "au", "am"), ()),
    "mal": (("emo", "au"), ("au",)),
    "mal_emo_au": (("emo", "au"), ("emo", "au")),
    "mml": (("emo", "au", "am"), ("au", "am")),
}


@dataclasses.dataclass
class MetaMTLConfig:
    """Options of ``method: {name: meta_mtl}``.

    Args:
        variant: one of :data:`VARIANTS`.
        statistics: ``"wild"`` (RAF-CE Table 1, sigmoid per entry, Eq. 5) or ``"lab"``
            (Du et al.'s observed AUs set to 1, sigmoid outside, §5.3).
        rho: fixed AU weight of Eq. 3 / rho_1 of Eq. 10 (the paper gives no value).
        rho_am: fixed alignment weight rho_2 of Eq. 10.
        dm1_form: ``"bernoulli"`` (our reading of Eq. 6) or ``"printed"``; see
            docs/FIDELITY.md.
        au_reduction: Eq. 1 over a sample's annotated AUs: ``"sum"`` (printed) or ``"mean"``.
        first_order: batch-level look-ahead gradients (a departure; default off).
        lookahead: what theta* of Eq. 13 steps: ``"base_net"`` (the paper) or
            ``"classifiers"`` (a departure: the meta gradient skips the backbone, about 2.5x
            cheaper per iteration; docs/FIDELITY.md).
        backbone_learning_rate, meta_learning_rate: §5.2 (0.001, 0.01); the classifiers
            use the experiment's ``optimizer.learning_rate`` (§5.2: 0.01).
        momentum: SGD momentum of the backbone and meta optimisers (§5.2 gives none).
        init_from: backbone weights file (``.weights.h5``); the paper's CASIA-WebFace
            pre-training cannot be downloaded.
        merge_sides: give ``AU12L``/``AU12R`` the table value of ``AU12``.
        meta_fraction, meta_seed, meta_stratify: the held-out quarter of the training
            split that feeds the meta batch (§5.2): ``make_dataset(holdout={"fraction":
            meta_fraction, "seed": meta_seed, "stratify": meta_stratify, "part":
            "holdout"})`` for the meta source and ``"part": "rest"`` for the train source.
    """

    name: str = "meta_mtl"
    variant: Literal["stl", "mtl", "am", "mal", "mal_emo_au", "mml"] = "mml"
    statistics: Literal["wild", "lab"] = "wild"
    rho: float = 1.0
    rho_am: float = 1.0
    dm1_form: Literal["bernoulli", "printed"] = "bernoulli"
    au_reduction: Literal["sum", "mean"] = "sum"
    first_order: bool = False
    lookahead: Literal["base_net", "classifiers"] = "base_net"
    backbone_learning_rate: float = 0.001
    meta_learning_rate: float = 0.01
    momentum: float = 0.0
    init_from: str | None = None
    merge_sides: bool = True
    meta_fraction: float = 0.25
    meta_seed: int = 0
    meta_stratify: bool = True


#: A tiny run on a SynthFace folder with the 14 RAF-CE compound classes
#: (``$SYNTHFACE:rafce14``): what the conformance tests train. The meta batch comes from
#: the held-out quarter of the training split, the base batch from the rest.
SMOKE_CONFIG = {
    "method": {"name": "meta_mtl", "variant": "mml", "meta_stratify": False},
    "data": {"train": [
        {"folder": "$SYNTHFACE:rafce14", "name": "train", "batch_size": 4,
         "holdout": {"fraction": 0.25, "seed": 0, "part": "rest"}},
        {"folder": "$SYNTHFACE:rafce14", "name": "meta", "batch_size": 4,
         "holdout": {"fraction": 0.25, "seed": 0, "part": "holdout"}}],
        "validation": [{"folder": "$SYNTHFACE:rafce14", "split": "val", "batch_size": 4}],
        "image_size": [32, 32], "shuffle_buffer": 1},
    "backbone": {"name": "resnet", "depth": 18, "width": 4, "stem": "compact"},
    "tasks": {"expression": {}, "au": {}},
    "optimizer": {"name": "sgd", "learning_rate": 0.01},
}
