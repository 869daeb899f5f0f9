"""Builder and compile hook of FERSNet for the method registry (method_interface)."""

import keras
import tensorflow as tf

from fermtl_tf.backbones.light_cnn import load_light_cnn_weights
from fermtl_tf.data.pipeline import check_selection, count_records, make_dataset
from fermtl_tf.data.target_pairs import TargetPool, add_target_pairs
from fermtl_tf.methods.fersnet.grid import SynthesisGridCallback
from fermtl_tf.methods.fersnet.model import FERSNetModel
from fermtl_tf.methods.fersnet.serving import add_synthesis_endpoint

#: FERSNetConfig fields passed to FERSNetModel unchanged.
_MODEL_FIELDS = (
    "synthesis", "encoder_widths", "decoder_widths", "classifier_units",
    "transformer_channels", "transformer_upsamplings", "discriminator_widths",
    "batch_norm_momentum", "gan_weight", "reconstruction_weight", "cycle_weight",
    "identity_weight_start", "identity_weight_end", "generator_objective",
    "squared_error_reduction", "train_synthesis",
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


def _selection(config, source):
    return {"folder": source.folder, "split": source.split, "folds": source.folds,
            "exclude_folds": source.exclude_folds, "image_size": config.data.image_size,
            "normalization": config.data.normalization}


def pooled_sources(config, first_epoch=0):
    """(endless stream of batches, steps per epoch): every training source drawn in
    proportion to its size (FES-DA: the real training images and their syntheses, Zhao et
    al. §IV-D), each source its shuffled and augmented training stream; batches of the
    first source's size, an epoch one pass over all of them. A run resumed at
    ``first_epoch`` skips the batches before it (decoded, then dropped: exact, not free)."""
    counts, streams = [], []
    for index, source in enumerate(config.data.train):
        selection = _selection(config, source)
        counts.append(check_selection(source.folder, source.split, source.folds,
                                      source.exclude_folds))
        streams.append(make_dataset(**selection, batch_size=source.batch_size, training=True,
                                    augment=source.augment, repeat=True,
                                    shuffle_buffer=config.data.shuffle_buffer,
                                    seed=config.seed + index,
                                    deterministic=config.deterministic)
                       # per sample; Dataset.unbatch() segfaults on this pipeline (TF 2.21)
                       .flat_map(tf.data.Dataset.from_tensor_slices))
    batch_size = config.data.train[0].batch_size
    pooled = tf.data.Dataset.sample_from_datasets(
        streams, weights=[count / sum(counts) for count in counts], seed=config.seed)
    steps = sum(counts) // batch_size
    return pooled.batch(batch_size, drop_remainder=True).skip(first_epoch * steps), steps


def train_dataset(config, first_epoch=0):
    """Training batches with a target image and expression of the same identity (§III-B).

    The pool of targets is the first training source read once without augmentation
    (centre crop); the batches are that source's, augmented as configured. Targets are
    drawn per batch from ``config.seed``, the epoch and the batch index. The batches are
    the pipeline's endless training stream from where a run resumed at ``first_epoch``
    stands; returned with the steps per epoch. A recognition-only fine-tuning
    (``train_synthesis: false``) needs no targets: every source, pooled.
    """
    if config.method.synthesis and not config.method.train_synthesis:
        return pooled_sources(config, first_epoch)
    source = config.data.train[0]
    selection = _selection(config, source)
    pool = TargetPool.from_dataset(make_dataset(**selection, batch_size=256, training=False))
    steps = config.steps_per_epoch or count_records(
        source.folder, source.split, folds=source.folds,
        exclude_folds=source.exclude_folds) // source.batch_size
    batches = make_dataset(**selection, batch_size=source.batch_size, training=True,
                           augment=source.augment, shuffle_buffer=config.data.shuffle_buffer,
                           seed=config.seed, deterministic=config.deterministic,
                           drop_remainder=True, repeat=True,
                           first_record=first_epoch * steps * source.batch_size)
    return add_target_pairs(batches, pool, seed=config.seed, first_epoch=first_epoch,
                            steps_per_epoch=steps), steps


def callbacks(model, config, output_dir):
    """A synthesis grid (inputs x every target expression) per epoch, on up to 8 faces of
    the first validation source (else the training source), when the model synthesises."""
    if not model.synthesis:
        return []
    source = (config.data.validation or config.data.train)[0]
    batch = next(iter(make_dataset(**_selection(config, source), batch_size=8,
                                   training=False)))
    return [SynthesisGridCallback(batch["image"].numpy(), output_dir,
                                  config.data.normalization)]


def export_endpoints(archive, model, input_size, normalization):
    """The second signature, ``synthesize(images, target_expression)``."""
    if model.synthesis:
        add_synthesis_endpoint(archive, model, input_size, normalization)
