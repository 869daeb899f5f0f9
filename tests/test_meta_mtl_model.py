"""MML base net, meta net and three-phase step (Li et al. 2023, §4.2, Eq. 11-17).

The meta gradient is checked against central finite differences of
``L_val(theta - alpha grad_theta L_MTL(theta, psi))`` with respect to psi, where theta*
and L_val are written here from the equations (plain tapes, no look-ahead machinery).
"""

import os
import subprocess
import sys
import textwrap
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.losses import alignment_am
from fermtl_tf.methods import get_method
from fermtl_tf.methods.meta_mtl.au_statistics import relatedness_table
from fermtl_tf.methods.meta_mtl.build import build_model, serving_model
from fermtl_tf.methods.meta_mtl.config import VARIANTS, MetaMTLConfig
from fermtl_tf.methods.meta_mtl.model import MetaMTLModel
from fermtl_tf.training.step_cost import step_flops

CLASSES, AUS, INPUTS, FEATURES, BATCH = 3, 4, 5, 3, 6
LR = {"backbone": 0.25, "classifiers": 0.5, "meta": 0.125}  # exact in float32


@pytest.fixture
def float64():
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # the global policy is cached once created
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


def make_batch(seed, batch=BATCH, dtype="float64", image_shape=(INPUTS,)):
    rng = np.random.default_rng(seed)
    au_mask = np.ones((batch, AUS))
    au_mask[0, 1:] = 0.0  # one sample annotated for one AU only
    return {
        "image": rng.normal(size=(batch, *image_shape)).astype(dtype),
        "expression": rng.integers(0, CLASSES, batch).astype("int32"),
        "expression_mask": np.array([1.0] * (batch - 1) + [0.0], dtype),
        "au": (rng.uniform(size=(batch, AUS)) > 0.5).astype(dtype),
        "au_mask": au_mask.astype(dtype),
    }


def table():
    return np.random.default_rng(7).uniform(0, 1, (CLASSES, AUS)) * [[1, 0, 1, 1]]


def linear_model(first_order=False, meta_terms=("au", "am"), seed=0, lookahead="base_net"):
    keras.utils.set_random_seed(seed)
    images = keras.Input((INPUTS,), name="image")
    backbone = keras.Model(images, keras.layers.Dense(FEATURES, activation="tanh")(images))
    model = MetaMTLModel(backbone, CLASSES, AUS, relatedness=table(), meta_terms=meta_terms,
                         learning_rates=LR, first_order=first_order, lookahead=lookahead)
    model.compile()
    # A non-zero meta net, so that the gradient through the weights is not special.
    kernel, bias = model.meta_net.trainable_variables
    kernel.assign(np.random.default_rng(seed + 1).normal(0, 0.5, kernel.shape))
    bias.assign(np.random.default_rng(seed + 2).normal(0, 0.5, bias.shape))
    return model


def values(variables):
    return [tf.constant(v.numpy()) for v in variables]


def reference_losses(theta, psi, batch):
    """Eq. 2, Eq. 1 (summed over annotated AUs), Eq. 9 per sample, and Eq. 11 weights."""
    wb, bb, we, be, wa, ba = theta
    features = tf.tanh(batch["image"] @ wb + bb)
    emo_logits, au_logits = features @ we + be, features @ wa + ba
    weights = tf.sigmoid(tf.stop_gradient(features) @ psi[0] + psi[1])
    emo = -tf.reduce_sum(tf.one_hot(batch["expression"], CLASSES, dtype=tf.float64)
                         * tf.nn.log_softmax(emo_logits), -1)
    p_au = tf.sigmoid(au_logits)
    bce = -(batch["au"] * tf.math.log(p_au) + (1 - batch["au"]) * tf.math.log(1 - p_au))
    au = tf.reduce_sum(bce * batch["au_mask"], -1)
    am = alignment_am(tf.nn.softmax(emo_logits), p_au, table(), dm1_form="bernoulli")
    return emo, au, am, weights


def reference_total(theta, psi, batch, first_order_grads=None):
    emo, au, am, weights = reference_losses(theta, psi, batch)
    mask = batch["expression_mask"]
    au_mask = (batch["au_mask"].sum(-1) > 0).astype("float64")
    return (tf.reduce_sum(mask * emo) / mask.sum()
            + tf.reduce_sum(au_mask * weights[:, 0] * au) / au_mask.sum()
            + tf.reduce_mean(weights[:, 1] * am))


def reference_val_loss(theta, psi, train, meta, first_order=False, lookahead="base_net"):
    """L_val(theta*) with theta* = theta - alpha grad L_MTL (Eq. 13), alpha per group; the
    ``classifiers`` departure is alpha = 0 for the backbone."""
    with tf.GradientTape() as tape:
        tape.watch(theta)
        total = reference_total(theta, psi, train)
    gradients = tape.gradient(total, theta)
    if first_order:
        gradients = first_order_gradients(theta, psi, train)
    rates = [LR["backbone"] * (lookahead == "base_net")] * 2 + [LR["classifiers"]] * 4
    star = [v - r * g for v, r, g in zip(theta, rates, gradients, strict=True)]
    features = tf.tanh(meta["image"] @ star[0] + star[1])
    logits = features @ star[2] + star[3]
    emo = -tf.reduce_sum(tf.one_hot(meta["expression"], CLASSES, dtype=tf.float64)
                         * tf.nn.log_softmax(logits), -1)
    return float(tf.reduce_sum(meta["expression_mask"] * emo) / meta["expression_mask"].sum())


def first_order_gradients(theta, psi, train):
    """The departure: sum_t mean(omega_t) * grad of the unweighted mean of term t."""
    mask = train["expression_mask"]
    au_mask = (train["au_mask"].sum(-1) > 0).astype("float64")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(theta)
        emo, au, am, _ = reference_losses(theta, psi, train)
        means = (tf.reduce_sum(mask * emo) / mask.sum(),
                 tf.reduce_sum(au_mask * au) / au_mask.sum(), tf.reduce_mean(am))
    _, _, _, weights = reference_losses(theta, psi, train)
    scales = (1.0, float(tf.reduce_sum(au_mask * weights[:, 0]) / au_mask.sum()),
              float(tf.reduce_mean(weights[:, 1])))
    total = [tf.zeros_like(v) for v in theta]
    for scale, mean in zip(scales, means, strict=True):
        gradients = tape.gradient(mean, theta, unconnected_gradients="zero")
        total = [t + scale * g for t, g in zip(total, gradients, strict=True)]
    return total


def finite_difference(theta, psi, train, meta, first_order=False, step=1e-6,
                      lookahead="base_net"):
    gradients = []
    for index, variable in enumerate(psi):
        flat = variable.numpy().ravel()
        grad = np.zeros_like(flat)
        for i in range(flat.size):
            shifted = []
            for sign in (1, -1):
                moved = flat.copy()
                moved[i] += sign * step
                trial = list(psi)
                trial[index] = tf.constant(moved.reshape(variable.shape))
                shifted.append(reference_val_loss(theta, trial, train, meta, first_order,
                                                  lookahead))
            grad[i] = (shifted[0] - shifted[1]) / (2 * step)
        gradients.append(grad.reshape(variable.shape))
    return gradients


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("lookahead", ["base_net", "classifiers"])
def test_meta_gradient_matches_finite_differences(float64, first_order, lookahead):
    model = linear_model(first_order=first_order, lookahead=lookahead)
    train, meta = make_batch(1), make_batch(2)
    theta, psi = values(model.base_variables), values(model.meta_net.trainable_variables)
    val_loss, gradients = model.meta_gradient(train, meta)
    assert float(val_loss) == pytest.approx(reference_val_loss(
        theta, psi, train, meta, first_order, lookahead), rel=1e-12)
    expected = finite_difference(theta, psi, train, meta, first_order, lookahead=lookahead)
    for got, want in zip(gradients, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    assert max(np.abs(g).max() for g in expected) > 1e-4  # the check is not vacuous


@pytest.mark.parametrize("departure", [{"first_order": True}, {"lookahead": "classifiers"}])
def test_departures_differ_from_exact(float64, departure):
    train, meta = make_batch(1), make_batch(2)
    exact = linear_model().meta_gradient(train, meta)[1]
    approx = linear_model(**departure).meta_gradient(train, meta)[1]
    assert not np.allclose(exact[0], approx[0], rtol=1e-3)


def test_zero_initialised_meta_net_gives_one_half():
    model = build_model(tiny_config(), tiny_data())
    features = tf.random.normal((4, model.backbone.output_shape[-1]))
    for weight in model.meta_weights(features).values():
        np.testing.assert_array_equal(weight, np.full(4, 0.5, "float32"))


def test_base_learning_uses_updated_meta_net(float64):
    """Eq. 16-17: theta_hat = theta - alpha grad L_MTL(theta, psi_hat), psi_hat of Eq. 14."""
    model = linear_model()
    train, meta = make_batch(1), make_batch(2)
    theta, psi = values(model.base_variables), values(model.meta_net.trainable_variables)
    meta_grad = finite_difference(theta, psi, train, meta)
    model.train_step({"train": train, "meta": meta})
    psi_hat = [p - LR["meta"] * g for p, g in zip(psi, meta_grad, strict=True)]
    for got, want in zip(model.meta_net.trainable_variables, psi_hat, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    rates = [LR["backbone"]] * 2 + [LR["classifiers"]] * 4

    def stepped(meta_params):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            total = reference_total(theta, meta_params, train)
        return [v - r * g for v, r, g in zip(theta, rates, tape.gradient(total, theta),
                                             strict=True)]

    with_hat, with_old = stepped([tf.constant(p) for p in psi_hat]), stepped(psi)
    for got, want in zip(model.base_variables, with_hat, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    gap = max(np.abs(w.numpy() - o.numpy()).max() for w, o in zip(with_hat, with_old, strict=True))
    assert gap > 1e-6  # psi and psi_hat give different steps: the check can fail


def test_plain_variants_take_one_fixed_weight_step(float64):
    """Eq. 3 (traditional MTL, rho = 0.5): a plain SGD step on L_emo + rho L_AU."""
    keras.utils.set_random_seed(0)
    images = keras.Input((INPUTS,), name="image")
    backbone = keras.Model(images, keras.layers.Dense(FEATURES, activation="tanh")(images))
    model = MetaMTLModel(backbone, CLASSES, AUS, terms=("emo", "au"), meta_terms=(),
                         fixed_weights={"au": 0.5}, learning_rates=LR)
    model.compile()
    batch = make_batch(3)
    theta = values(model.base_variables)
    with tf.GradientTape() as tape:
        tape.watch(theta)
        emo, au, _, _ = reference_losses(theta, values(model.meta_net.trainable_variables),
                                         batch)
        mask = batch["expression_mask"]
        total = tf.reduce_sum(mask * emo) / mask.sum() + 0.5 * tf.reduce_mean(au)
    rates = [LR["backbone"]] * 2 + [LR["classifiers"]] * 4
    logs = model.train_step(batch)
    for got, v, r, g in zip(model.base_variables, theta, rates, tape.gradient(total, theta),
                            strict=True):
        np.testing.assert_allclose(got.numpy(), (v - r * g).numpy(), rtol=1e-9, atol=1e-12)
    assert "omega_au" not in logs


def test_meta_variant_without_meta_batch_is_an_error():
    model = build_model(tiny_config(), tiny_data())
    model.compile()
    with pytest.raises(ValueError, match="meta batch"):
        model.train_step({"train": make_batch(0, 4, "float32", (16, 16, 3))})


# -- build, fit, save, resume, export -----------------------------------------------------


def tiny_config(variant="mml", **method):
    return types.SimpleNamespace(
        method=MetaMTLConfig(variant=variant, momentum=0.9, **method),
        backbone=types.SimpleNamespace(name="resnet", depth=18, width=4, stem="compact"),
        optimizer=types.SimpleNamespace(learning_rate=0.01))


def tiny_data():
    return types.SimpleNamespace(
        image_size=(16, 16), normalization="minus_one_one",
        expression_vocabulary=["happily_surprised", "sadly_angry", "fearfully_angry"],
        au_names=["AU1", "AU4", "AU9", "AU12L"])


def two_source_dataset(steps=2):
    elements = [{"train": make_batch(10 + i, 4, "float32", (16, 16, 3)),
                 "meta": make_batch(20 + i, 4, "float32", (16, 16, 3))} for i in range(steps)]
    stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *elements)
    return tf.data.Dataset.from_tensor_slices(stacked)


def test_build_model_follows_config_and_tables():
    model = build_model(tiny_config(statistics="lab"), tiny_data())
    assert model.meta_terms == ("au", "am") and model.alignment.sigmoid == "outside"
    lab = np.array(model.alignment.relatedness)
    assert set(np.unique(lab)) <= {0.0, 1.0}
    wild = np.array(build_model(tiny_config(), tiny_data()).alignment.relatedness)
    assert wild[2, 2] == pytest.approx(0.56)  # fearfully angry, AU9 (§4.1 example)
    assert wild[0, 3] == pytest.approx(0.58)  # AU12L takes AU12 (merge_sides)
    for variant, (terms, meta_terms) in VARIANTS.items():
        model = build_model(tiny_config(variant), tiny_data())
        assert (model.terms, model.meta_terms) == (terms, meta_terms)


def test_spec_is_registered():
    spec = get_method("meta_mtl")
    assert spec.config is MetaMTLConfig and spec.resolve("builder") is build_model
    assert spec.resolve("serving_model") is serving_model


def optimizer_states(model):
    return [v.numpy() for opt in (model.optimizer, model.backbone_optimizer,
                                  model.meta_optimizer) for v in opt.variables]


def conv_backbone():
    """A small conv + batch-norm backbone (ResNet-18 tracing takes ~30 s on CPU)."""
    keras.utils.set_random_seed(0)
    images = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(4, 3, strides=2)(images)
    x = keras.layers.BatchNormalization()(keras.layers.ReLU()(x))
    return keras.Model(images, keras.layers.GlobalAveragePooling2D()(x))


def conv_model():
    relatedness = relatedness_table(tiny_data().expression_vocabulary, tiny_data().au_names)
    model = MetaMTLModel(conv_backbone(), CLASSES, AUS, relatedness=relatedness, momentum=0.9)
    model.compile()
    return model


def test_fit_save_load_resume_and_export(tmp_path):
    """All three optimisers' states come back; one more step is identical after loading."""
    model = conv_model()
    history = model.fit(two_source_dataset(), epochs=1, verbose=0)
    assert {"loss", "omega_au", "omega_am", "meta_emo_loss"} <= set(history.history)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert model.meta_optimizer.iterations.numpy() == 2
    assert any(np.abs(v.numpy()).max() > 0 for v in model.meta_net.trainable_variables)
    path = tmp_path / "mml.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, MetaMTLModel)
    for a, b in zip(optimizer_states(model), optimizer_states(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a).max() > 0 for a in optimizer_states(loaded)[4:])  # momenta moved
    images = make_batch(5, 4, "float32", (16, 16, 3))["image"]
    np.testing.assert_allclose(loaded.predict(images, verbose=0)["expression_logits"],
                               model.predict(images, verbose=0)["expression_logits"], atol=1e-5)
    step = next(iter(two_source_dataset(1)))
    model.train_step(step)
    loaded.train_step(step)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    served = serving_model(loaded).predict(images, verbose=0)
    assert set(served) == {"expression_logits"}
    np.testing.assert_allclose(served["expression_logits"],
                               loaded.predict(images, verbose=0)["expression_logits"], atol=1e-5)


def test_evaluate_on_plain_batches():
    model = build_model(tiny_config("mtl"), tiny_data())
    model.compile()
    batch = make_batch(4, 4, "float32", (16, 16, 3))
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert 0.0 <= logs["expression_accuracy"] <= 1.0 and np.isfinite(logs["emo_loss"])


MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    import test_meta_mtl_model as t

    step = {"train": t.make_batch(1, 8, "float32"), "meta": t.make_batch(2, 8, "float32")}
    # Replica 0 gets 4 labelled expressions of the meta batch, replica 1 only 3.
    step["meta"]["expression_mask"][5] = 0.0
    data = tf.data.Dataset.from_tensors(step)
    one = t.linear_model()
    one.fit(data, epochs=1, verbose=0, shuffle=False)
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        two = t.linear_model()
    two.fit(data, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(one.weights, two.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)
    moved = np.abs(one.meta_net.kernel.numpy() - t.linear_model().meta_net.kernel.numpy())
    assert moved.max() > 1e-4
    print("EQUIVALENT")
""")


@pytest.mark.slow
def test_two_cpu_replicas_take_the_one_device_meta_step():
    """tf.distribute: theta* from the all-reduced gradient, global denominators."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, os.path.dirname(__file__)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "EQUIVALENT" in run.stdout


def test_init_from_loads_backbone_weights_and_names_the_key(tmp_path):
    source = build_model(tiny_config(), tiny_data()).backbone
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    model = build_model(tiny_config(init_from=path), tiny_data())
    for a, b in zip(source.weights, model.backbone.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="method.init_from"):
        build_model(tiny_config(init_from=str(tmp_path / "missing.weights.h5")), tiny_data())


# -- cost: the passes of one iteration, counted from the compiled step's graph -------------


def conv_flops_of_layers(backbone, batch):
    """FLOPs of each Conv2D layer's forward for ``batch`` images, from the layer shapes."""
    flops = []
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels = layer.output.shape
            kh, kw, inputs, _ = layer.kernel.shape
            flops.append(2 * batch * height * width * channels * kh * kw * inputs)
    return flops


@pytest.mark.parametrize("variant", ["mtl", "mml", "mml_classifiers"])
def test_step_makes_exactly_the_passes_of_its_algorithm(variant):
    """MML (Eq. 12-17) = forward and backward of the train batch (look-ahead), forward and
    backward of the meta batch at theta*, one second-order pass (the transpose of the
    look-ahead backward: two convolutions per layer, one for the first layer, whose input
    has no tangent), one more train backward (base-learning, the phase (i) forward reused).
    ``lookahead="classifiers"``: the two forwards and the base-learning backward only.
    Traditional MTL: one forward, one backward. No input gradient for the first layer."""
    keras.utils.set_random_seed(0)
    images = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(4, 3, strides=2)(images)
    x = keras.layers.Conv2D(6, 3, padding="same")(keras.layers.BatchNormalization()(x))
    backbone = keras.Model(images, keras.layers.GlobalAveragePooling2D()(x))
    terms, meta_terms = VARIANTS[variant.split("_")[0]]
    relatedness = relatedness_table(tiny_data().expression_vocabulary, tiny_data().au_names)
    model = MetaMTLModel(backbone, CLASSES, AUS, relatedness=relatedness, terms=terms,
                         meta_terms=meta_terms,
                         lookahead="classifiers" if variant.endswith("classifiers") else "base_net")
    model.compile()
    step = {"train": make_batch(1, 4, "float32", (16, 16, 3)),
            "meta": make_batch(2, 4, "float32", (16, 16, 3))}
    graph = tf.function(lambda: model.train_step(step)).get_concrete_function().graph
    by_type = step_flops(graph)
    per_layer = conv_flops_of_layers(backbone, 4)
    forward, first = sum(per_layer), per_layer[0]
    # (Conv2D passes, first layers skipped in them, filter-gradient passes, input-gradient
    # passes); the second-order pass in MML (base net look-ahead) only
    passes, skipped, filters, inputs = {"mtl": (1, 0, 1, 1), "mml": (4, 1, 3, 3),
                                        "mml_classifiers": (2, 0, 1, 1)}[variant]
    assert by_type["Conv2D"] == passes * forward - skipped * first
    assert by_type["Conv2DBackpropFilter"] == filters * forward
    assert by_type["Conv2DBackpropInput"] == inputs * (forward - first)
    if variant != "mtl":  # the name scopes that attribute a step's time to its phases
        scoped = step_flops(graph, scope_and_type)
        assert scoped["meta_train", "Conv2D"] == scoped["meta_test", "Conv2D"] == forward
        second_order = {t: v for (s, t), v in scoped.items()
                        if s == "second_order" and t.startswith("Conv")}
        assert second_order == ({"Conv2D": 2 * forward - first} if variant == "mml" else {})


def scope_and_type(op):
    """(outermost name scope, or "second_order" for a gradient of a gradient; op type)."""
    second = op.name.startswith("gradient_tape/gradient_tape/")
    return ("second_order" if second else op.name.split("/")[0]), op.type
