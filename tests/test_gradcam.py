"""Grad-CAM of the expression output (Li et al. 2023 Fig. 4): maps against numpy on
hand-made models whose answer is known, and the ``fermtl-eval --gradcam`` command."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.evaluation.gradcam import cam_model, gradcam, overlay

SIZE, MAP = 16, 8


@keras.saving.register_keras_serializable(package="fermtl_tf_tests")
class QuadrantMask(keras.layers.Layer):
    """Zeroes every map position outside one quadrant of the [MAP, MAP] grid."""

    def __init__(self, quadrant=(0, 0), **kwargs):
        super().__init__(**kwargs)
        self.quadrant = tuple(quadrant)

    def call(self, maps):
        mask = np.zeros((1, MAP, MAP, 1), np.float32)
        row, col = self.quadrant
        mask[:, row * MAP // 2:(row + 1) * MAP // 2, col * MAP // 2:(col + 1) * MAP // 2] = 1
        return maps * mask

    def get_config(self):
        return {**super().get_config(), "quadrant": list(self.quadrant)}


def quadrant_model(quadrant, seed=0):
    """image -> 2x2-pooled 1x1 conv (3 maps, ReLU) -> mask -> GAP -> 4 logits."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.AveragePooling2D(2)(images)
    x = keras.layers.Conv2D(3, 1, activation="relu", name="conv")(x)
    maps = QuadrantMask(quadrant, name="masked")(x)
    logits = keras.layers.Dense(4, name="expression_logits")(
        keras.layers.GlobalAveragePooling2D()(maps))
    return keras.Model(images, {"expression_logits": logits})


def numpy_gradcam(model, images, classes):
    """Grad-CAM from the definition with the analytic gradient of this architecture:
    y^c = sum_k w_kc mean_ij A^k_ij  =>  dy^c/dA^k_ij = w_kc / (h w), alpha_k = w_kc/(h w)."""
    maps = keras.Model(model.inputs, model.get_layer("masked").output)(images).numpy()
    weights = model.get_layer("expression_logits").kernel.numpy()  # [3, 4]
    alpha = weights[:, classes].T / (MAP * MAP)  # [B, 3]
    cams = np.maximum(np.einsum("bijk,bk->bij", maps, alpha), 0)
    peak = cams.max(axis=(1, 2), keepdims=True)
    return np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)


@pytest.mark.parametrize("quadrant", [(0, 0), (1, 1), (0, 1)])
def test_maps_equal_numpy_and_lie_in_the_watched_quadrant(quadrant):
    model = quadrant_model(quadrant)
    images = tf.random.uniform((5, SIZE, SIZE, 3), 0, 1, seed=3)
    classes = np.array([0, 1, 2, 3, 0])
    low, used = gradcam(cam_model(model), images, classes, resize=False)
    np.testing.assert_array_equal(used, classes)
    np.testing.assert_allclose(low, numpy_gradcam(model, images, classes), atol=1e-6)

    cams, _ = gradcam(cam_model(model), images, classes)
    assert cams.shape == (5, SIZE, SIZE)
    assert cams.min() >= 0 and cams.max() <= 1
    rows, cols = slice(quadrant[0] * SIZE // 2, (quadrant[0] + 1) * SIZE // 2), \
        slice(quadrant[1] * SIZE // 2, (quadrant[1] + 1) * SIZE // 2)
    for cam in cams:
        if cam.max() == 0:  # ReLU cut every positive evidence: an all-zero map
            continue
        assert cam.max() == pytest.approx(1.0)
        inside = cam[rows, cols].sum()
        assert inside / cam.sum() > 0.85  # bilinear upsampling bleeds one pixel over
        assert cam[rows, cols].max() == pytest.approx(1.0)


def test_default_class_is_the_predicted_one():
    model = quadrant_model((1, 0))
    images = tf.random.uniform((4, SIZE, SIZE, 3), 0, 1, seed=5)
    _, used = gradcam(cam_model(model), images)
    np.testing.assert_array_equal(used, np.argmax(model(images)["expression_logits"], -1))


def test_meta_mtl_model_maps_of_its_last_conv_block():
    from test_meta_mtl_model import conv_model

    model = conv_model()  # 16x16 input, one strided conv: 7x7 maps before pooling
    cam = cam_model(model)
    assert cam.outputs[0].shape[1:3] == (7, 7)
    images = tf.random.uniform((3, 16, 16, 3), -1, 1, seed=7)
    np.testing.assert_allclose(cam(images)[1], model(images)["expression_logits"], atol=1e-5)
    cams, _ = gradcam(cam, images)
    assert cams.shape == (3, 16, 16) and cams.min() >= 0 and cams.max() <= 1


def test_model_without_expression_logits_is_named():
    images = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(images, keras.layers.Conv2D(2, 1)(images), name="plain")
    with pytest.raises(ValueError, match="plain"):
        cam_model(model)


def test_overlay_blends_a_colour_map_over_the_face():
    image = np.full((SIZE, SIZE, 3), 100, np.uint8)
    cam = np.zeros((SIZE, SIZE), np.float32)
    cam[:4, :4] = 1.0
    blended = overlay(image, cam)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    assert blended[0, 0, 0] > blended[0, 0, 2]  # jet: hot = red
    assert blended[-1, -1, 2] > blended[-1, -1, 0]  # cold = blue


def test_fermtl_eval_gradcam_writes_overlays_of_a_run_model(tmp_path):
    """The command on a run folder (model.keras + config.yaml) and a prepared folder."""
    import cv2
    from test_meta_mtl_model import conv_model
    from test_pipeline import make_records, write_folder

    from fermtl_tf.cli.evaluate import main

    run = tmp_path / "run"
    run.mkdir()
    conv_model().save(run / "model.keras")
    (run / "config.yaml").write_text("method: {name: meta_mtl}\n"
                                     "data: {normalization: minus_one_one}\n")
    folder = write_folder(str(tmp_path / "data"), make_records(6, seed=1))
    assert main(["--model", str(run / "model.keras"), "--data", folder, "--split", "all",
                 "--gradcam", "3", "--out", str(tmp_path / "out")]) == 0
    written = sorted((tmp_path / "out" / "gradcam").glob("*.png"))
    assert len(written) == 4 and (tmp_path / "out" / "gradcam" / "sheet.png") in written
    first = cv2.imread(str(written[0]))
    assert first.shape == (16, 16, 3)
    assert main(["--model", str(run / "model.keras"), "--gradcam", str(written[0]),
                 "--out", str(tmp_path / "files")]) == 0
    assert (tmp_path / "files" / "gradcam" / f"{written[0].stem}.png").exists()


def test_fermtl_eval_gradcam_refuses_a_saved_model_folder(tmp_path, capsys):
    from fermtl_tf.cli.evaluate import main

    assert main(["--model", str(tmp_path), "--data", str(tmp_path), "--gradcam", "2"]) == 2
    assert ".keras" in capsys.readouterr().err
