"""Grad-CAM of the expression output (Selvaraju et al. 2017), as Li et al. 2023 Fig. 4.

Fig. 4 of Li et al. 2023 compares "attention regions" of traditional MTL and MML with
Grad-CAM [35]. For a class c with logit y^c and the maps A^k [h, w] of the last conv
block: alpha_k = mean_ij dy^c / dA^k_ij, L = ReLU(sum_k alpha_k A^k), upsampled
(bilinear) to the input size and divided by its maximum, so every map lies in [0, 1]
(an all-zero map stays zero). The class is the predicted one unless given.

It needs gradients, so it works on the *training* model saved as ``.keras`` (the run
folder's ``model.keras``), not on the exported SavedModel, whose serving function is
not meant to be differentiated. Supported models: those with a ``backbone`` (a
functional ``keras.Model``) and an ``expression_head`` layer (MML's
:class:`~fermtl_tf.methods.meta_mtl.model.MetaMTLModel`), and functional models whose
outputs include ``expression_logits``. The maps are those of the last layer with a 4-D
output (the last residual stage of a ResNet) unless a layer is named.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

#: Blend of the colour map over the face in the overlays.
OVERLAY_ALPHA = 0.45


def _last_map_layer(model, layer_name=None):
    """The layer whose [B, h, w, C] output Grad-CAM reads (named, or the last 4-D one)."""
    if layer_name is not None:
        try:
            return model.get_layer(layer_name)
        except ValueError:
            raise ValueError(f"Grad-CAM: no layer {layer_name!r} in model {model.name!r}") from None
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        if shape is not None and len(layer.output.shape) == 4:
            return layer
    raise ValueError(f"Grad-CAM: model {model.name!r} has no layer with a 4-D output")


def cam_model(model, layer_name=None):
    """``keras.Model``: images -> ``(maps [B, h, w, C], expression logits [B, K])``."""
    if hasattr(model, "backbone") and hasattr(model, "expression_head"):
        backbone = model.backbone
        maps = _last_map_layer(backbone, layer_name).output
        inner = keras.Model(backbone.inputs, [maps, backbone.outputs[0]])
        images = keras.Input(backbone.input_shape[1:], name="image")
        conv, features = inner(images)
        return keras.Model(images, [conv, model.expression_head(features)], name="gradcam")
    outputs = model.outputs
    names = getattr(model, "output_names", None) or []
    if isinstance(model.output, dict) and "expression_logits" in model.output:
        logits = model.output["expression_logits"]
    elif "expression_logits" in names:
        logits = outputs[list(names).index("expression_logits")]
    else:
        raise ValueError(f"Grad-CAM: model {model.name!r} has neither a backbone with an "
                         f"expression_head nor an 'expression_logits' output")
    maps = _last_map_layer(model, layer_name).output
    return keras.Model(model.inputs, [maps, logits], name="gradcam")


@tf.function
def _gradcam(cam, images, classes):
    with tf.GradientTape() as tape:
        maps, logits = cam(images, training=False)
        score = tf.reduce_sum(tf.gather(logits, classes, batch_dims=1))
    gradients = tape.gradient(score, maps)
    alpha = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)  # [B, 1, 1, C]
    low = tf.nn.relu(tf.reduce_sum(alpha * maps, axis=-1))  # [B, h, w]
    return low, logits


def gradcam(cam, images, classes=None, resize=True):
    """Grad-CAM maps ``[B, H, W]`` in [0, 1] and the classes they explain ``[B]``.

    ``cam`` is a :func:`cam_model`; ``images`` are what the model takes (normalised);
    ``classes`` (int [B]) default to the predicted ones. ``resize=False`` keeps the
    maps' own resolution (normalised the same way).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if classes is None:
        classes = tf.argmax(cam(images, training=False)[1], axis=-1, output_type=tf.int32)
    classes = tf.convert_to_tensor(classes, tf.int32)
    low, _ = _gradcam(cam, images, classes)
    if resize:
        low = tf.image.resize(low[..., None], tf.shape(images)[1:3], method="bilinear")[..., 0]
        low = tf.nn.relu(low)  # bilinear weights are non-negative; guard round-off
    peak = tf.reduce_max(low, axis=[1, 2], keepdims=True)
    normalised = tf.math.divide_no_nan(low, peak)
    return normalised.numpy(), classes.numpy()


def overlay(image, cam, alpha=OVERLAY_ALPHA):
    """RGB uint8: ``image`` (uint8 [H, W, 3]) with ``cam`` ([H, W] in [0, 1]) as a jet map."""
    import cv2

    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * heat
    return np.uint8(np.clip(blended, 0, 255))


def write_overlays(images, cams, names, out_dir):
    """One ``<name>.png`` overlay per image in ``out_dir``; returns the paths."""
    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, cam, name in zip(images, cams, names, strict=True):
        path = out_dir / f"{name}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(overlay(image, cam), cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


def write_sheet(images, cams, titles, path):
    """Faces (top row) and their overlays (bottom row) with ``titles``, one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(images)
    figure = Figure(figsize=(1.7 * count, 3.9))
    FigureCanvasAgg(figure)
    for index, (image, cam, title) in enumerate(zip(images, cams, titles, strict=True)):
        for row, picture in enumerate((image, overlay(image, cam))):
            axes = figure.add_subplot(2, count, row * count + index + 1)
            axes.imshow(picture)
            axes.set_axis_off()
            if row == 0:
                axes.set_title(title, fontsize=6)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
