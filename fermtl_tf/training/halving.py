"""Halve the learning rate and reload the best weights when training goes wrong (Liu et al. 2017).

Liu et al. 2017, §5.2 (FER2013 pre-training): "If the training loss increased more than
25% or the validation accuracy does not improve for ten epochs, the learning rate is
halved and the previous network with the best loss is reloaded."

Our reading (docs/FIDELITY.md): at the end of every epoch

* the *best loss* is the lowest training loss so far; an epoch that reaches it saves the
  weights (``weights_path``), the "previous network with the best loss";
* *rise*: the epoch's training loss exceeds the best loss by more than ``loss_rise``
  (0.25) of it;
* *stall*: the monitored validation accuracy has not exceeded its best for ``patience``
  (10) epochs in a row (ignored when the logs have no such key: no validation data);
* on a rise or a stall the learning rate is multiplied by ``factor`` (0.5), the best-loss
  weights are reloaded and the stall count restarts.

Resume: Keras' ``BackupAndRestore`` keeps weights, optimiser and epoch but no callback
state, so the state (best loss, best accuracy, stall count, number of halvings) is
*recomputed* from the finished epochs' ``history.csv`` rows with the same rule
(:func:`replay`), the learning rate set from it, and the best weights reloaded when the
last finished epoch halved (its backup was written before the reload). The best-loss
weights file itself lives in the run folder and survives the interruption.
"""

import dataclasses
import math
from pathlib import Path

import keras


@dataclasses.dataclass
class HalvingState:
    """What the rule remembers between epochs (all recomputable from the history)."""

    best_loss: float = math.inf
    best_accuracy: float = -math.inf
    stalled_epochs: int = 0
    halvings: int = 0
    halved_last_epoch: bool = False


def _number(value):
    """A history value as float, None when absent or empty (CSV 'NA', '')."""
    if value is None or value in ("", "NA"):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def step(state, loss, accuracy, loss_rise=0.25, patience=10):
    """Apply the §5.2 rule for one finished epoch; returns ``(new state, improved loss)``.

    ``accuracy`` None skips the stall test. The returned state's ``halved_last_epoch``
    says whether this epoch halves the learning rate (and reloads the best weights).
    """
    state = dataclasses.replace(state, halved_last_epoch=False)
    improved = loss is not None and loss < state.best_loss
    if improved:
        state.best_loss = loss
    if accuracy is not None:
        if accuracy > state.best_accuracy:
            state.best_accuracy, state.stalled_epochs = accuracy, 0
        else:
            state.stalled_epochs += 1
    rise = loss is not None and loss > state.best_loss + loss_rise * abs(state.best_loss)
    stall = accuracy is not None and state.stalled_epochs >= patience
    if rise or stall:
        state.halvings += 1
        state.stalled_epochs = 0
        state.halved_last_epoch = True
    return state, improved


def replay(rows, loss="loss", monitor="val_expression_accuracy", loss_rise=0.25, patience=10):
    """The :class:`HalvingState` after the finished epochs ``rows`` (``history.csv`` dicts)."""
    state = HalvingState()
    for row in rows:
        state, _ = step(state, _number(row.get(loss)), _number(row.get(monitor)),
                        loss_rise, patience)
    return state


@keras.saving.register_keras_serializable(package="fermtl_tf")
class HalveOnRiseOrStall(keras.callbacks.Callback):
    """The §5.2 learning-rate rule of Liu et al. 2017 as a Keras callback.

    Args:
        weights_path: where the best-loss weights are kept (``*.weights.h5``).
        factor: learning-rate multiplier on a rise or a stall (0.5: "halved").
        loss_rise: relative rise of the training loss over its best that triggers (0.25).
        patience: epochs without a better ``monitor`` that trigger (10).
        loss: the training-loss key of the epoch logs.
        monitor: the validation-accuracy key of the epoch logs.
        history: the ``history.csv`` rows of the epochs finished before a resume.

    It needs an optimiser with a float (not scheduled) learning rate.
    """

    def __init__(self, weights_path, factor=0.5, loss_rise=0.25, patience=10, loss="loss",
                 monitor="val_expression_accuracy", history=()):
        super().__init__()
        if not 0 < factor < 1:
            raise ValueError(f"factor must lie in (0, 1), got {factor}")
        if loss_rise <= 0 or patience < 1:
            raise ValueError(f"need loss_rise > 0 and patience >= 1, got {loss_rise}, {patience}")
        self.weights_path = str(weights_path)
        self.factor, self.loss_rise, self.patience = float(factor), float(loss_rise), int(patience)
        self.loss, self.monitor = loss, monitor
        self.history = [dict(row) for row in history]
        self.state = HalvingState()

    def get_config(self):
        return {"weights_path": self.weights_path, "factor": self.factor,
                "loss_rise": self.loss_rise, "patience": self.patience, "loss": self.loss,
                "monitor": self.monitor}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _learning_rate(self):
        optimizer = self.model.optimizer
        if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            raise ValueError("HalveOnRiseOrStall needs a constant learning rate "
                             "(schedule: {name: halve_on_rise_or_stall} compiles one)")
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def _set_learning_rate(self, value):
        self.model.optimizer.learning_rate = value  # assigns the optimiser's variable

    def _reload_best(self):
        if Path(self.weights_path).is_file():
            self.model.load_weights(self.weights_path)

    def on_train_begin(self, logs=None):
        self.initial_learning_rate = self._learning_rate()
        self.state = replay(self.history, self.loss, self.monitor, self.loss_rise, self.patience)
        if self.history:  # a resume: the logged rate is the one before any halving that epoch
            logged = _number(self.history[-1].get("learning_rate"))
            base = self.initial_learning_rate if logged is None else logged
            rate = base * (self.factor if self.state.halved_last_epoch else 1.0)
            if self.state.halved_last_epoch:
                self._reload_best()
            self._set_learning_rate(rate)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.state, improved = step(self.state, _number(logs.get(self.loss)),
                                    _number(logs.get(self.monitor)), self.loss_rise,
                                    self.patience)
        if improved:
            Path(self.weights_path).parent.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(self.weights_path)
        if self.state.halved_last_epoch:
            rate = self._learning_rate() * self.factor
            self._reload_best()  # the weights file may hold the optimiser's rate as well
            self._set_learning_rate(rate)
