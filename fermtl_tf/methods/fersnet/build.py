"""Builder and compile hook of FERSNet for the method registry (method_interface)."""

import keras

from fermtl_tf.backbones.light_cnn import load_light_cnn_weights
from fermtl_tf.methods.fersnet.model import FERSNetModel

#: FERSNetConfig fields passed to FERSNetModel unchanged.
_MODEL_FIELDS = (
    "synthesis", "encoder_widths", "decoder_widths", "classifier_units",
    "transformer_channels", "transformer_upsamplings", "discriminator_widths",
    "batch_norm_momentum", "gan_weight", "reconstruction_weight", "cycle_weight",
    "identity_weight_start", "identity_weight_end", "generator_objective",
    "squared_error_reduction",
)


def _num_classes(config):
    tasks = getattr(config, "tasks", None) or {}
    if "expression" not in tasks:
        raise ValueError("method fersnet needs the 'expression' task in the config's tasks; "
                         f"got {sorted(tasks)}.")
    return int(tasks["expression"].num_classes)


def sharing_mode(options):
    """``FERSNetModel``'s ``sharing`` from the config's two ablation switches."""
    if not options.synthesis:
        return "none"
    return "convflu" if options.convflu else "hard"


def build_model(config, data):
    """``FERSNetModel`` for an experiment config (``config.method`` a FERSNetConfig).

    The identity network's weights come from ``method.identity_weights``; with the
    identity loss on and no file named, this is an error rather than an identity loss on
    random features.
    """
    options = config.method
    identity_size = None
    if options.synthesis and options.identity_loss:
        if not options.identity_weights:
            raise ValueError(
                "method.identity_weights is not set: FERSNet's identity loss (Eq. 9) needs "
                "Light CNN-9 weights (.keras or .weights.h5, see data_prep/light_cnn.md); "
                "or set method.identity_loss: false to train without L_idt."
            )
        identity_size = options.identity_input_size
    model = FERSNetModel(
        num_classes=_num_classes(config),
        sharing=sharing_mode(options),
        image_size=tuple(config.data.image_size),
        normalization=config.data.normalization,
        identity_input_size=identity_size,
        **{field: getattr(options, field) for field in _MODEL_FIELDS},
    )
    if identity_size is not None:
        load_light_cnn_weights(model.identity_network, options.identity_weights)
    return model


def discriminator_optimizer(options, total_steps):
    """Adam with cosine annealing from ``discriminator_learning_rate`` to
    ``discriminator_final_learning_rate`` over ``total_steps`` (§IV-A: 1e-3 -> 1e-5)."""
    start = float(options.discriminator_learning_rate)
    schedule = keras.optimizers.schedules.CosineDecay(
        start, decay_steps=max(int(total_steps), 1),
        alpha=float(options.discriminator_final_learning_rate) / start)
    return keras.optimizers.Adam(learning_rate=schedule)


def compile_kwargs(model, config, steps_per_epoch):
    """The discriminator optimiser and λ4's ramp length (the whole run)."""
    total_steps = int(config.epochs) * int(steps_per_epoch)
    kwargs = {"identity_ramp_steps": total_steps}
    if model.synthesis:
        kwargs["discriminator_optimizer"] = discriminator_optimizer(config.method, total_steps)
    return kwargs
