"""``MultiTaskModel``: a functional Keras model trained by :class:`MultiTaskSteps`.

The convenience for methods whose model is a functional graph on plain images
(the baseline, Hu et al. 2018, FaceBehaviorNet): ``MultiTaskModel(inputs, outputs_dict,
task_weights=...)``. Subclassed models compose ``MultiTaskSteps`` with ``keras.Model``
themselves (see ``fermtl_tf/training/steps.py``, which also explains the losses,
distribution and mixed precision).
"""

import keras

from fermtl_tf.training.steps import MultiTaskSteps, merge_sources, num_replicas
from fermtl_tf.training.weighting import Weighting


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MultiTaskModel(MultiTaskSteps, keras.Model):
    """Functional Keras model with the multi-task steps: total = sum_k w_k L_k + regularisers.

    Build it like a functional model (``MultiTaskModel(inputs, outputs_dict,
    task_weights=...)``) or subclass it and call ``super().__init__(inputs=...,
    outputs=..., task_weights=...)``. The model maps a batch of normalised images to a
    dict of named outputs (``expression_logits`` [B, C], ``landmarks`` [B, 68, 2],
    ``au_logits`` [B, K], ...).

    Args:
        task_weights: ``{loss name: weight}``. Rows of the task table switch on that
            task's masked loss and metrics; subclasses adding further named losses in
            :meth:`compute_task_losses` give their weights here too.
        weighting: a :class:`Weighting` instead of ``task_weights`` (ramped lambdas).

    Example:
        >>> x = keras.Input((8,))
        >>> model = MultiTaskModel(x, {"expression_logits": keras.layers.Dense(3)(x)},
        ...                        task_weights={"expression": 1.0})
        >>> model.compile(optimizer="sgd")
        >>> model.fit(dataset_of_batch_dicts, epochs=1)
    """

    def __init__(self, *args, task_weights=None, weighting=None, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(weighting, dict):
            weighting = Weighting.from_config(weighting)
        self.init_multitask(task_weights, weighting)

    def get_config(self):
        config = super().get_config()
        config["weighting"] = self.weighting.get_config()
        return config


__all__ = ["MultiTaskModel", "MultiTaskSteps", "merge_sources", "num_replicas"]
