"""FERSNetModel: network shapes, the alternating D/G step, two optimisers saved and restored,
serving, the ablation modes, and the method's builder and compile hook."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.backbones.light_cnn import light_cnn_9
from fermtl_tf.methods import get_method
from fermtl_tf.methods.fersnet import FERSNetConfig
from fermtl_tf.methods.fersnet.build import build_model, compile_kwargs
from fermtl_tf.methods.fersnet.model import FERSNetModel, identity_network_input

TINY = dict(num_classes=3, image_size=(32, 32), encoder_widths=[4, 8, 8, 8],
            decoder_widths=[8, 8, 4, 4], classifier_units=8, transformer_channels=4,
            discriminator_widths=[4, 8, 8, 8])
TINY_OPTIONS = {k: v for k, v in TINY.items() if k not in ("num_classes", "image_size")}


def _batch(size=4, seed=0):
    rng = np.random.default_rng(seed)
    return {key: tf.constant(value) for key, value in {
            "image": rng.uniform(-1, 1, (size, 32, 32, 3)).astype("float32"),
            "expression": (np.arange(size) % 3).astype("int32"),
            "expression_mask": np.ones(size, "float32"),
            "identity": np.zeros(size, "int32"),
            "target_image": rng.uniform(-1, 1, (size, 32, 32, 3)).astype("float32"),
            "target_expression": ((np.arange(size) + 1) % 3).astype("int32")}.items()}


def _compiled(**overrides):
    model = FERSNetModel(**{**TINY, **overrides})
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  discriminator_optimizer=keras.optimizers.Adam(1e-2) if model.synthesis
                  else None)
    return model


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables, strict=True)]


def test_output_shapes_and_gates():
    model = FERSNetModel(**TINY)
    images = _batch()["image"]
    assert model(images)["expression_logits"].shape == (4, 3)
    assert model.synthesize(images, [0, 1, 2, 0]).shape == (4, 32, 32, 3)
    gates = model.gate_maps(images)
    assert sorted(gates) == sorted(f"{task}_{gate}_gate_{i}" for task in ("fer", "fes")
                                   for gate in ("leaky", "memory") for i in range(1, 5))
    assert gates["fer_leaky_gate_1"].shape == (4, 16, 16, 4)
    assert gates["fes_memory_gate_4"].shape == (4, 2, 2, 8)


def test_synthesis_depends_on_the_target_label():
    model = FERSNetModel(**TINY)
    images = _batch()["image"]
    a = model.synthesize(images, [0, 0, 0, 0]).numpy()
    b = model.synthesize(images, [1, 1, 1, 1]).numpy()
    assert not np.allclose(a, b)


def test_discriminator_step_changes_only_the_discriminator():
    model = _compiled()
    batch = _batch()
    generator = _values(model.generator_variables)
    discriminator = _values(model.discriminator.trainable_variables)
    synthetic = model.synthesize(batch["image"], batch["target_expression"])
    model._discriminator_step(batch["target_image"], synthetic, batch["target_expression"])
    assert not any(_changed(generator, model.generator_variables))
    assert all(_changed(discriminator, model.discriminator.trainable_variables))


def test_generator_step_changes_only_the_generator():
    model = _compiled(identity_input_size=16)
    model._discriminator_step = lambda *args: tf.constant(0.0)  # isolate the G step
    discriminator = _values(model.discriminator.trainable_variables)
    identity = _values(model.identity_network.weights)
    generator = _values(model.generator_variables)
    logs = model.train_step(_batch())
    assert not any(_changed(discriminator, model.discriminator.trainable_variables))
    assert not any(_changed(identity, model.identity_network.weights))
    assert all(_changed(generator, model.generator_variables))
    assert float(logs["identity_loss"]) > 0.0


def test_a_full_step_updates_both_sides_with_their_own_optimiser():
    model = _compiled()
    logs = model.train_step(_batch())
    assert int(model.optimizer.iterations) == 1
    assert int(model.discriminator_optimizer.iterations) == 1
    for name in ("loss", "classification_loss", "gan_loss", "reconstruction_loss",
                 "cycle_loss", "identity_loss", "discriminator_loss", "accuracy"):
        assert np.isfinite(float(logs[name])), name
    np.testing.assert_allclose(float(logs["identity_weight"]), 0.5)  # no ramp: final λ4


@pytest.mark.parametrize("compiled", [False, True])
def test_running_statistics_come_from_the_real_faces_pass_only(compiled):
    """After a step the batch-norm running statistics equal those a twin model gets from the
    real-face pass alone (encoder on I, then G(z_t, I)): the cycle pass on the synthetic
    faces uses batch statistics but does not move them."""
    keras.utils.set_random_seed(3)
    model, twin = _compiled(), _compiled()
    twin.set_weights(model.get_weights())
    batch = _batch(seed=5)
    before = _values(model._running_statistics)
    step = tf.function(model.train_step) if compiled else model.train_step
    step(batch)
    features = twin.encoder(batch["image"], training=True)
    twin._generate(features["fes_features"], batch["target_expression"], training=True)
    assert any(_changed(before, model._running_statistics))
    for ours, expected in zip(model._running_statistics, twin._running_statistics, strict=True):
        np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_total_loss_is_eq10_of_the_logged_terms():
    model = _compiled(identity_input_size=16, gan_weight=0.3, reconstruction_weight=1.0,
                      cycle_weight=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  discriminator_optimizer=keras.optimizers.Adam(1e-2), identity_ramp_steps=4)
    logs = {k: float(v) for k, v in model.train_step(_batch()).items()}
    np.testing.assert_allclose(logs["identity_weight"], 0.1)  # λ4 at step 0
    expected = (logs["classification_loss"] + 0.3 * logs["gan_loss"]
                + logs["reconstruction_loss"] + 0.5 * logs["cycle_loss"]
                + 0.1 * logs["identity_loss"])
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_missing_target_keys_are_named():
    model = _compiled()
    batch = _batch()
    del batch["target_image"]
    with pytest.raises(KeyError, match="target_image"):
        model.train_step(batch)


def test_compile_needs_a_discriminator_optimizer():
    with pytest.raises(ValueError, match="discriminator_optimizer"):
        FERSNetModel(**TINY).compile(optimizer="adam")


def test_keras_round_trip_restores_weights_and_both_optimisers(tmp_path):
    model = _compiled(identity_input_size=16)
    for seed in (0, 1):
        model.train_step(_batch(seed=seed))
    path = tmp_path / "fersnet.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, FERSNetModel)
    assert restored.get_config() == model.get_config()
    for a, b in zip(model.identity_network.weights, restored.identity_network.weights,
                    strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for mine, theirs in ((model.optimizer, restored.optimizer),
                         (model.discriminator_optimizer, restored.discriminator_optimizer)):
        assert int(theirs.iterations) == 2
        assert len(mine.variables) == len(theirs.variables) > 2
        for a, b in zip(mine.variables, theirs.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    images = _batch()["image"]
    np.testing.assert_allclose(restored.predict(images, verbose=0)["expression_logits"],
                               model(images)["expression_logits"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(restored.synthesize(images, [1, 2, 0, 1]),
                               model.synthesize(images, [1, 2, 0, 1]), rtol=1e-5, atol=1e-6)
    restored.train_step(_batch(seed=2))  # resumes
    assert int(restored.discriminator_optimizer.iterations) == 3


@pytest.mark.slow
def test_fit_runs_the_step_as_a_tf_function():
    """``fit`` traces train_step (the generator tape is re-entered after the D step)."""
    model = _compiled()
    history = model.fit(tf.data.Dataset.from_tensors(_batch()).repeat(2), epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == int(model.discriminator_optimizer.iterations) == 2
    assert np.isfinite(history.history["loss"][0])


def test_weights_checkpoint_restores_both_optimisers(tmp_path):
    """What BackupAndRestore does: save_weights, then load_weights into a fresh model."""
    model = _compiled()
    model.train_step(_batch())
    path = tmp_path / "backup.weights.h5"
    model.save_weights(path)
    fresh = _compiled()
    fresh.load_weights(path)
    for mine, theirs in ((model.optimizer, fresh.optimizer),
                         (model.discriminator_optimizer, fresh.discriminator_optimizer)):
        for a, b in zip(mine.variables, theirs.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_hard_sharing_feeds_both_tasks_from_one_encoder():
    model = _compiled(sharing="hard")
    assert not any("fes_block" in layer.name for layer in model.encoder.layers)
    features = model.encoder(_batch()["image"])
    assert features["fer_features"] is features["fes_features"]
    model.train_step(_batch())
    with pytest.raises(ValueError, match="no ConvFLUs"):
        model.gate_maps(_batch()["image"])


def test_fer_branch_alone_trains_the_classifier_only():
    model = _compiled(sharing="none", synthesis=False)
    assert model.discriminator is None
    batch = {k: v for k, v in _batch().items() if not k.startswith("target")}
    logs = model.train_step(batch)
    assert set(logs) == {"loss", "classification_loss", "accuracy"}
    with pytest.raises(ValueError, match="without synthesis"):
        model.synthesize(batch["image"], [0, 0, 0, 0])


def test_inconsistent_ablation_switches_are_rejected():
    with pytest.raises(ValueError, match="sharing 'none' is the FER branch alone"):
        FERSNetModel(**TINY, sharing="none", synthesis=True)


def test_identity_network_input_is_grey_unit_range():
    images = np.stack([np.full((32, 32, 3), -1.0), np.full((32, 32, 3), 1.0)]).astype("float32")
    out = identity_network_input(images, "minus_one_one", 16).numpy()
    assert out.shape == (2, 16, 16, 1)
    np.testing.assert_allclose(out[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[1], 1.0, atol=2e-4)  # grey weights sum to 0.9999


def _experiment(tmp_path, **method):
    options = FERSNetConfig(**{**TINY_OPTIONS, **method})
    return types.SimpleNamespace(
        method=options, tasks={"expression": types.SimpleNamespace(num_classes=3)},
        data=types.SimpleNamespace(image_size=(32, 32), normalization="minus_one_one"),
        epochs=5, seed=0)


def test_spec_is_registered():
    spec = get_method("fersnet")
    assert spec.config is FERSNetConfig
    assert spec.resolve("builder") is build_model
    assert spec.resolve("compile_kwargs") is compile_kwargs


def test_builder_refuses_identity_loss_without_weights(tmp_path):
    with pytest.raises(ValueError, match="identity_weights is not set"):
        build_model(_experiment(tmp_path), data=None)


def test_builder_names_a_missing_weights_file(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(FileNotFoundError, match="nowhere.weights.h5"):
        build_model(_experiment(tmp_path, identity_weights=str(missing),
                                identity_input_size=16), data=None)


def test_builder_loads_identity_weights(tmp_path):
    source = light_cnn_9((16, 16, 1))
    path = tmp_path / "lightcnn.weights.h5"
    source.save_weights(path)
    model = build_model(_experiment(tmp_path, identity_weights=str(path),
                                    identity_input_size=16), data=None)
    for a, b in zip(source.weights, model.identity_network.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("convflu, synthesis, sharing", [
    (True, True, "convflu"), (False, True, "hard"), (True, False, "none"),
])
def test_ablation_switches_choose_the_network(tmp_path, convflu, synthesis, sharing):
    model = build_model(_experiment(tmp_path, convflu=convflu, synthesis=synthesis,
                                    identity_loss=False), data=None)
    assert model.sharing == sharing and model.synthesis == synthesis


def test_compile_hook_gives_cosine_discriminator_optimiser_and_ramp(tmp_path):
    config = _experiment(tmp_path, identity_loss=False)
    model = build_model(config, data=None)
    kwargs = compile_kwargs(model, config, steps_per_epoch=20)
    assert kwargs["identity_ramp_steps"] == 100
    schedule = kwargs["discriminator_optimizer"].learning_rate
    lr = kwargs["discriminator_optimizer"]._learning_rate
    assert isinstance(kwargs["discriminator_optimizer"], keras.optimizers.Adam)
    np.testing.assert_allclose(float(lr(0)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(lr(50)), 1e-5 + (1e-3 - 1e-5) * 0.5, rtol=1e-5)
    np.testing.assert_allclose(float(lr(100)), 1e-5, rtol=1e-5)
    assert schedule is not None
