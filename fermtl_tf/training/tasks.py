"""The task table: one row per supervised task, used by the config, the models and the logs.

Each :class:`TaskSpec` says which config options the task takes (a TF-free dataclass
validated under ``tasks: {<name>: {...}}``), which model output and which batch label and
presence mask it pairs, which per-sample loss supervises it by default, and which metric
the training logs report. The module imports no TensorFlow (``fermtl-train --check``
validates configs with it); the loss is named as ``"module:Class"`` and resolved by
:func:`task_loss` when a model is built.

A method may supervise a task with another loss (Hu et al.'s l2 landmarks, Eq. 2's
per-image AU mean of FaceBehaviorNet) by overriding
``MultiTaskSteps.compute_task_losses``; the table's loss is the default.
"""

import dataclasses
import importlib
from typing import Literal


@dataclasses.dataclass
class ExpressionTask:
    num_classes: int | None = None  # None: len(manifest["vocabularies"]["expression"])


@dataclasses.dataclass
class LandmarksTask:
    loss: Literal["l1", "l2"] = "l1"  # l2: Hu et al. 2018, Table 6 (hu2018 method only)


@dataclasses.dataclass
class AUTask:
    """AU logits -> sigmoid, binary cross entropy over the annotated AUs.

    ``au_names``: the model's AU vocabulary (null: the method's default, e.g. the 17 AUs
    of FaceBehaviorNet's footnote 2). Dataset AU columns are mapped to it by name; AUs a
    dataset lacks are unlabelled (mask 0) for its images.
    """

    au_names: list[str] | None = None


@dataclasses.dataclass
class VATask:
    """Valence and arousal, linear outputs, loss 1 - CCC (Kollias et al., Eq. 2)."""

    loss: Literal["ccc"] = "ccc"


@dataclasses.dataclass
class IdentityTask:
    """Identity logits -> softmax cross entropy (Kollias et al. Case II, Eq. 9)."""

    num_classes: int | None = None  # None: the number of identities in the training data


@dataclasses.dataclass
class AttributesTask:
    """Attribute logits -> sigmoid, BCE over annotated attributes (Case II, Eq. 9)."""

    num_attributes: int | None = None  # None: the manifest's num_attributes


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One supervised task.

    Args:
        name: the task (= its loss) name in configs, logs and ``task_weights``.
        options: dataclass of the task's config options.
        output: the model output it reads.
        label, mask: batch keys of the label and its presence mask.
        loss: ``"module:Class"`` of the default per-sample masked loss (None: the task's
            loss is not a mean of per-sample terms, e.g. 1 - CCC; the method computes it).
        metric: name of the training-log metric (``None``: the loss only).
    """

    name: str
    options: type
    output: str
    label: str
    mask: str
    loss: str | None
    metric: str | None = None


_MASKED = "fermtl_tf.losses.masked"

#: Every task the package knows, keyed by name.
TASKS = {spec.name: spec for spec in (
    TaskSpec("expression", ExpressionTask, "expression_logits", "expression",
             "expression_mask", f"{_MASKED}:MaskedSoftmaxCrossEntropy", "expression_accuracy"),
    TaskSpec("landmarks", LandmarksTask, "landmarks", "landmarks", "landmarks_mask",
             f"{_MASKED}:MaskedL1", "landmarks_nme"),
    TaskSpec("au", AUTask, "au_logits", "au", "au_mask",
             f"{_MASKED}:MaskedBinaryCrossEntropy", "au_accuracy"),
    TaskSpec("va", VATask, "valence", "valence", "va_mask", None),
    TaskSpec("identity", IdentityTask, "identity_logits", "identity", "identity_mask",
             f"{_MASKED}:MaskedSoftmaxCrossEntropy"),
    TaskSpec("attributes", AttributesTask, "attributes_logits", "attributes",
             "attributes_mask", f"{_MASKED}:MaskedBinaryCrossEntropy"),
)}


def task_loss(name):
    """A fresh instance of task ``name``'s default loss, named ``<name>_loss``."""
    module, _, cls = TASKS[name].loss.partition(":")
    return getattr(importlib.import_module(module), cls)(name=f"{name}_loss")
