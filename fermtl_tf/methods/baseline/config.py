"""Config of the single-task baseline: ``method: {name: baseline}`` (no options).

The model is one ResNet-18/34 and one head (Hu et al. 2018, Table 4 "RN"); it trains
exactly one task, ``expression`` or ``landmarks``, with ``sharing: {name: single_task}``.
"""

import dataclasses


@dataclasses.dataclass
class BaselineMethod:
    name: str = "baseline"


def check(config):
    """Cross-field rules of the baseline (yields ``(key, message)``)."""
    if len(config.tasks) != 1:
        yield "tasks", f"method 'baseline' trains exactly one task, got {sorted(config.tasks)}"
    if config.sharing.name != "single_task":
        yield "sharing.name", f"method 'baseline' uses sharing 'single_task', got {config.sharing.name!r}"
    landmarks = config.tasks.get("landmarks")
    if landmarks is not None and landmarks.loss != "l1":
        yield "tasks.landmarks.loss", (f"only method 'hu2018' implements {landmarks.loss!r}; "
                                       f"the baseline uses l1")
    if config.backbone.name != "resnet":
        yield "backbone.name", f"method 'baseline' uses backbone 'resnet', got {config.backbone.name!r}"


#: A tiny run on a SynthFace folder (``$SYNTHFACE``): what the conformance tests train.
SMOKE_CONFIG = {
    "method": {"name": "baseline"},
    "data": {"train": [{"folder": "$SYNTHFACE", "batch_size": 4}],
             "validation": [{"folder": "$SYNTHFACE", "split": "val", "batch_size": 4}],
             "image_size": [32, 32], "shuffle_buffer": 1},
    "backbone": {"name": "resnet", "depth": 18, "width": 4, "stem": "compact"},
    "tasks": {"expression": {}},
    "sharing": {"name": "single_task"},
    "optimizer": {"name": "adam", "learning_rate": 1e-3},
}
