"""The ``method: {name: fersnet, ...}`` section (plain dataclasses, no TensorFlow).

Defaults are Zhao et al.'s (§III-C, §IV-A) where the paper gives a value; the widths it
does not give are ours (docs/FIDELITY.md, "FERSNet").
"""

import dataclasses
from typing import Literal


@dataclasses.dataclass
class FERSNetConfig:
    """FERSNet options.

    Table VI's ablations: ``convflu: false`` is "w/o ConvFLU" (hard sharing: one encoder
    feeding both tasks); ``synthesis: false`` is "w/o MTL" (the FER branch alone, trained
    on L_cls; ``convflu`` then has nothing to connect). The paper matches their capacity
    to FERSNet's by enlarging the networks: set wider ``encoder_widths`` for them.
    """

    name: str = "fersnet"
    convflu: bool = True
    synthesis: bool = True
    # FES-DA (Table VI last row): false keeps the network but trains only the recognition
    # side on L_cls, on every training source (real + synthetic), with init_from a FERSNet.
    train_synthesis: bool = True
    # FES-DA: the index in data.train of the synthetic source. Before training, its folder
    # is written (unless already complete) with every other-expression synthesis of the
    # first source's selection by the init_from FERSNet (augmentation.prepare_fes_da).
    fes_da_source: int | None = None
    encoder_widths: list[int] = dataclasses.field(default_factory=lambda: [64, 128, 256, 512])
    decoder_widths: list[int] = dataclasses.field(default_factory=lambda: [256, 128, 64, 32])
    classifier_units: int = 512
    transformer_channels: int = 64
    transformer_upsamplings: int = 1
    discriminator_widths: list[int] = dataclasses.field(
        default_factory=lambda: [64, 128, 256, 512])
    batch_norm_momentum: float = 0.9
    # Eq. 10 weights (§IV-A): λ1 GAN, λ2 reconstruction, λ3 cycle, λ4 identity ramp.
    gan_weight: float = 0.3
    reconstruction_weight: float = 1.0
    cycle_weight: float = 0.5
    identity_weight_start: float = 0.1
    identity_weight_end: float = 0.5
    generator_objective: Literal["non_saturating", "minimax"] = "non_saturating"
    squared_error_reduction: Literal["mean", "sum"] = "mean"
    # Identity loss (Eq. 9): a Light CNN-9 weights file (.keras / .weights.h5). Required
    # while identity_loss is true; identity_loss: false drops L_idt explicitly.
    identity_loss: bool = True
    identity_weights: str | None = None
    identity_input_size: int = 128
    # Discriminator optimiser: Adam, cosine annealing from the first to the final rate
    # over the run (§IV-A: 1e-3 -> 1e-5), like the generator's.
    discriminator_learning_rate: float = 1e-3
    discriminator_final_learning_rate: float = 1e-5


def check(config):
    """FERSNet's cross-field rules: ``fes_da_source`` names a second training source of
    a recognition-only fine-tuning that starts from a FERSNet."""
    index = config.method.fes_da_source
    if index is None:
        return
    if not 1 <= index < len(config.data.train):
        yield ("method.fes_da_source", f"must name a training source after the first "
                                       f"(the real faces): 1..{len(config.data.train) - 1}, "
                                       f"got {index}")
    elif not config.init_from:
        yield ("init_from", "method.fes_da_source needs the FERSNet that synthesises "
                            "(init_from: its model.keras)")
    elif not config.method.synthesis or config.method.train_synthesis:
        yield ("method.train_synthesis", "method.fes_da_source is FES-DA's fine-tuning: "
                                         "set synthesis: true and train_synthesis: false")


#: A tiny run on a SynthFace folder (``$SYNTHFACE``): what the conformance tests train
#: (no identity loss: the Light CNN weights cannot ship).
SMOKE_CONFIG = {
    "method": {"name": "fersnet", "encoder_widths": [4, 4, 8, 8],
               "decoder_widths": [8, 8, 4, 4], "classifier_units": 8,
               "transformer_channels": 4, "discriminator_widths": [4, 8],
               "identity_loss": False},
    "data": {"train": [{"folder": "$SYNTHFACE", "batch_size": 4}],
             "validation": [{"folder": "$SYNTHFACE", "split": "val", "batch_size": 4}],
             "image_size": [32, 32], "shuffle_buffer": 1},
    "tasks": {"expression": {}},
    "optimizer": {"name": "adam", "learning_rate": 1e-3},
}
