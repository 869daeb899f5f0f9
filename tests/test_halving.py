"""The §5.2 learning-rate rule of Liu et al. 2017 (fermtl_tf.training.halving) on fake
loss / accuracy sequences, checked against the rule worked by hand."""

import keras
import numpy as np
import pytest

from fermtl_tf.training.halving import HalveOnRiseOrStall, HalvingState, replay, step


def _model(learning_rate=0.1):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def _learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_rise_of_more_than_a_quarter_halves():
    state = HalvingState()
    state, improved = step(state, 1.0, None)
    assert improved and state.best_loss == 1.0 and not state.halved_last_epoch
    state, improved = step(state, 1.25, None)  # exactly +25 %: not "more than"
    assert not improved and not state.halved_last_epoch
    state, _ = step(state, 1.26, None)
    assert state.halved_last_epoch and state.halvings == 1 and state.best_loss == 1.0


def test_ten_epochs_without_better_accuracy_halve_and_restart_the_count():
    state = HalvingState()
    accuracies = [0.5] + [0.5] * 9 + [0.4] + [0.6] + [0.6] * 10
    halved = []
    for accuracy in accuracies:
        state, _ = step(state, 1.0, accuracy)
        halved.append(state.halved_last_epoch)
    # epoch 0 sets the best; epochs 1..10 do not beat it: the 10th of them (index 10) halves;
    # index 11 improves; indices 12..21 stall again: index 21 halves.
    assert [i for i, h in enumerate(halved) if h] == [10, 21]
    assert state.halvings == 2 and state.best_accuracy == 0.6


def test_missing_accuracy_skips_the_stall_rule():
    state = HalvingState()
    for _ in range(30):
        state, _ = step(state, 1.0, None, patience=3)
    assert state.halvings == 0


def test_replay_reads_history_rows_as_csv_strings():
    rows = [{"loss": "2.0", "val_expression_accuracy": "0.3"},
            {"loss": "1.0", "val_expression_accuracy": "0.4"},
            {"loss": "1.3", "val_expression_accuracy": ""}]
    state = replay(rows)
    assert state.best_loss == 1.0 and state.best_accuracy == 0.4
    assert state.halvings == 1 and state.halved_last_epoch


def test_callback_halves_the_rate_and_reloads_the_best_loss_weights(tmp_path):
    model = _model(0.1)
    callback = HalveOnRiseOrStall(tmp_path / "best.weights.h5", patience=100)
    callback.set_model(model)
    callback.on_train_begin()
    best = [np.full_like(w, 1.0) for w in model.get_weights()]
    model.set_weights(best)
    callback.on_epoch_end(0, {"loss": 1.0, "val_expression_accuracy": 0.5})
    assert _learning_rate(model) == pytest.approx(0.1)
    model.set_weights([np.full_like(w, 7.0) for w in best])  # training drifts
    callback.on_epoch_end(1, {"loss": 1.1, "val_expression_accuracy": 0.6})
    assert _learning_rate(model) == pytest.approx(0.1)  # +10 %: kept
    assert np.all(model.get_weights()[0] == 7.0)
    callback.on_epoch_end(2, {"loss": 1.5, "val_expression_accuracy": 0.6})
    assert _learning_rate(model) == pytest.approx(0.05)
    for weight, expected in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(weight, expected)


def test_a_resumed_callback_continues_as_an_uninterrupted_one(tmp_path):
    losses = [1.0, 0.8, 0.9, 1.2, 0.7, 0.95, 0.6]
    accuracies = [0.2, 0.3, 0.3, 0.3, 0.35, 0.3, 0.3]
    logs = [{"loss": loss, "val_expression_accuracy": accuracy}
            for loss, accuracy in zip(losses, accuracies, strict=True)]

    def run(callback, model, epochs, rows):
        for epoch in epochs:
            rows.append({**{k: str(v) for k, v in logs[epoch].items()},
                         "learning_rate": str(_learning_rate(model))})  # logged before the rule
            callback.on_epoch_end(epoch, logs[epoch])

    whole_model, whole_rows = _model(0.1), []
    whole = HalveOnRiseOrStall(tmp_path / "a.weights.h5", patience=2)
    whole.set_model(whole_model)
    whole.on_train_begin()
    run(whole, whole_model, range(7), whole_rows)

    first_model, rows = _model(0.1), []
    first = HalveOnRiseOrStall(tmp_path / "b.weights.h5", patience=2)
    first.set_model(first_model)
    first.on_train_begin()
    run(first, first_model, range(4), rows)  # interrupted after epoch 3, which halved
    resumed_model = _model(0.1)  # a fresh process: the rate starts at the config's value
    resumed = HalveOnRiseOrStall(tmp_path / "b.weights.h5", patience=2, history=rows)
    resumed.set_model(resumed_model)
    resumed.on_train_begin()
    assert resumed.state == first.state
    assert _learning_rate(resumed_model) == pytest.approx(_learning_rate(first_model))
    run(resumed, resumed_model, range(4, 7), rows)
    assert resumed.state == whole.state
    assert _learning_rate(resumed_model) == pytest.approx(_learning_rate(whole_model))
    # by hand: best loss 0.8 at epoch 1; epoch 3: 1.2 > 1.25 * 0.8 (rise, and 2 epochs
    # without better accuracy) -> 0.05; epoch 4: best 0.7; epoch 5: 0.95 > 0.875 -> 0.025.
    assert _learning_rate(whole_model) == pytest.approx(0.025)
    assert whole.state.halvings == 2


def test_config_round_trip_and_bad_arguments(tmp_path):
    callback = HalveOnRiseOrStall(tmp_path / "w.weights.h5", factor=0.5, loss_rise=0.25,
                                  patience=10, monitor="val_acc")
    again = HalveOnRiseOrStall.from_config(callback.get_config())
    assert again.get_config() == callback.get_config()
    with pytest.raises(ValueError, match="factor"):
        HalveOnRiseOrStall(tmp_path / "w.weights.h5", factor=2.0)


def test_the_schedule_builds_the_callback_with_the_backed_up_history(tmp_path):
    from fermtl_tf.experiments.config import ScheduleConfig
    from fermtl_tf.experiments.experiment import make_schedule, schedule_callbacks

    schedule = ScheduleConfig(name="halve_on_rise_or_stall", factor=0.5, patience=3)
    assert make_schedule(schedule, 0.1, steps_per_epoch=10, epochs=5) == 0.1
    assert schedule_callbacks(ScheduleConfig(name="step"), tmp_path) == []
    (tmp_path / "history.csv").write_text(
        "epoch,loss,val_expression_accuracy\n0,1.0,0.2\n1,2.0,0.1\n2,0.5,0.3\n")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    callback, = schedule_callbacks(schedule, tmp_path)
    assert isinstance(callback, HalveOnRiseOrStall)
    assert callback.patience == 3 and callback.factor == 0.5
    assert callback.weights_path == str(tmp_path / "checkpoints" / "best_loss.weights.h5")
    # epochs 0 and 1 were backed up: epoch 1 rose 100 % over 1.0 and halved
    assert replay(callback.history) == HalvingState(best_loss=1.0, best_accuracy=0.2,
                                                     stalled_epochs=0, halvings=1,
                                                     halved_last_epoch=True)
