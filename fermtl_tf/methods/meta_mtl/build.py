"""Build the MML base net + meta net from an experiment config (Li et al. 2023, §5.2)."""

import keras

from fermtl_tf.backbones.resnet import build_resnet
from fermtl_tf.methods.meta_mtl.au_statistics import relatedness_table
from fermtl_tf.methods.meta_mtl.config import VARIANTS
from fermtl_tf.methods.meta_mtl.model import MetaMTLModel
from fermtl_tf.methods.meta_mtl.weight_curves import WeightCurvesCallback


def build_backbone(config, data):
    """ResNet (34 layers in the paper) on ``data.image_size`` RGB (112x112 in §5.2)."""
    backbone = build_resnet(depth=config.backbone.depth, width=config.backbone.width,
                            input_shape=(*data.image_size, 3), stem=config.backbone.stem)
    if config.method.init_from:
        try:
            backbone.load_weights(config.method.init_from)
        except (OSError, ValueError) as error:
            raise ValueError(f"method.init_from {config.method.init_from!r}: cannot load "
                             f"backbone weights: {error}") from None
    return backbone


def build_model(config, data):
    """The :class:`MetaMTLModel` of ``config.method.variant`` (uncompiled)."""
    method = config.method
    terms, meta_terms = VARIANTS[method.variant]
    relatedness = None
    if "am" in terms:
        relatedness = relatedness_table(data.expression_vocabulary, data.au_names,
                                        method.statistics, method.merge_sides)
    return MetaMTLModel(
        build_backbone(config, data), num_classes=len(data.expression_vocabulary),
        num_aus=len(data.au_names), relatedness=relatedness, terms=terms,
        meta_terms=meta_terms, fixed_weights={"au": method.rho, "am": method.rho_am},
        sigmoid="outside" if method.statistics == "lab" else "inside",
        dm1_form=method.dm1_form, au_reduction=method.au_reduction,
        learning_rates={"backbone": method.backbone_learning_rate,
                        "classifiers": config.optimizer.learning_rate,
                        "meta": method.meta_learning_rate},
        momentum=method.momentum, first_order=method.first_order, lookahead=method.lookahead,
        name="meta_mtl")


def serving_model(model):
    """What export serves: images -> ``{"expression_logits"}`` (§4.2: "our net conducts
    testing by predicting only compound emotions")."""
    images = keras.Input(shape=model.backbone.input_shape[1:], name="image")
    logits = model.expression_head(model.backbone(images, training=False))
    return keras.Model(images, {"expression_logits": logits}, name="meta_mtl_serving")


def callbacks(model, config, output_dir):
    """Fig. 5 (b): the mean meta weights per epoch drawn to ``meta_weights.png`` at the end
    of training (the values themselves are ``history.csv``'s ``omega_*`` columns)."""
    return [WeightCurvesCallback(output_dir)] if model.meta_terms else []
