"""Builder and training hooks of Hu et al. 2018 from an experiment config."""

import numpy as np

from fermtl_tf.errors import ConfigError
from fermtl_tf.layers import GradientReversalSchedule
from fermtl_tf.methods.hu2018.config import TASK_ORDER
from fermtl_tf.methods.hu2018.model import Hu2018Model
from fermtl_tf.methods.hu2018.trace_norm_rate import TraceNormRateLogger


def landmark_whitening(data):
    """``{"mean": [68 x 2], "scale": s}`` of the training landmarks (§4.1, "whitened"): the
    mean shape of the labelled training faces and the standard deviation of their
    coordinates about it (one scale, so the geometry stays isotropic)."""
    labels = data.training_labels(("landmarks", "landmarks_mask"))
    points = labels["landmarks"][labels["landmarks_mask"] > 0]
    if not len(points):
        raise ConfigError("tasks.landmarks: no training source has landmark labels to whiten "
                          "with; set method.whiten_landmarks: false or add landmark data")
    mean = points.mean(axis=0)
    return {"mean": mean.tolist(), "scale": float(np.sqrt(np.mean((points - mean) ** 2)))}


def build_model(config, data):
    """``Hu2018Model`` for ``config`` (the cross-field rules are checked by ``config.check``)."""
    height, width = config.data.image_size
    if height != width:
        raise ConfigError(f"data.image_size: the stacked ResNet needs square images, "
                          f"got {list(config.data.image_size)}")
    sharing, coupling = config.sharing, config.coupling
    trace_norm = None if sharing.trace_norm is None else dict(vars(sharing.trace_norm))
    ada = None
    if coupling.name == "ada":
        ada = {"weight": coupling.weight, "reversal_scale": coupling.reversal_scale,
               "hidden_units": list(coupling.hidden_units)}
    try:
        return Hu2018Model(
            num_classes=config.tasks["expression"].num_classes, depth=config.backbone.depth,
            width=config.backbone.width, input_size=height, stem=config.backbone.stem,
            trace_norm=trace_norm, hard_shared_layers=sharing.hard_shared_layers,
            cross_stitch=sharing.cross_stitch, ada=ada,
            landmarks_loss=config.tasks["landmarks"].loss,
            task_weights={t: config.task_weight(t) for t in TASK_ORDER},
            implementation=sharing.implementation, name="hu2018",
            landmark_whitening=(landmark_whitening(data) if config.method.whiten_landmarks
                                else None))
    except ValueError as error:
        raise ConfigError(f"sharing: {error}") from None


def callbacks(model, config, output_dir):
    """The per-epoch trace norm rate of every stacked layer (Fig. 3a/3b) and, with
    ``coupling.reversal_schedule: ganin``, the gradient-reversal ramp of the ADA layer."""
    method = (model.trace_norm or {}).get("method", "laf")
    extra = []
    coupling = config.coupling
    if coupling.name == "ada" and coupling.reversal_schedule == "ganin":
        # the ADA branch runs in the training step, outside the functional graph, so its
        # reversal layer is not among model.layers where the callback would search
        extra.append(GradientReversalSchedule(gamma=coupling.gamma,
                                              max_scale=coupling.reversal_scale,
                                              layers=[model.gradient_reversal]))
    return [TraceNormRateLogger(output_dir, method=method), *extra]
