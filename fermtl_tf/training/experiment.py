"""``run_experiment``: config -> datasets, model, optimiser -> ``model.fit`` -> outputs.

Python use (the demo builds on this)::

    from fermtl_tf.training.experiment import run_experiment
    from fermtl_tf.export import export_saved_model

    result = run_experiment("train/configs/baseline/expression_synthface.yaml",
                            overrides=["epochs=1"])
    export_saved_model(result.model, result.output_dir / "saved_model",
                       input_size=result.input_size, normalization=result.normalization,
                       metadata=result.metadata)

Models are built by the builder registered for the config's ``sharing`` name
(:func:`register_model_builder`); later methods register theirs.
"""

import contextlib
import dataclasses
import math
from pathlib import Path

import keras

from fermtl_tf.data.augment import AugmentConfig
from fermtl_tf.data.pipeline import (
    count_records,
    load_manifest,
    make_dataset,
    make_multi_source_dataset,
)
from fermtl_tf.models.baseline import build_baseline_model
from fermtl_tf.models.facebehaviornet import build_facebehaviornet_model
from fermtl_tf.models.hu2018 import build_hu2018_model
from fermtl_tf.training.callbacks import make_callbacks
from fermtl_tf.training.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_config,
    save_config,
)
from fermtl_tf.training.strategy import make_strategy


@dataclasses.dataclass
class ExperimentResult:
    """What a finished run hands back; ``metadata`` feeds ``export_saved_model``."""

    model: keras.Model
    history: dict
    output_dir: Path
    config: ExperimentConfig
    model_path: Path
    input_size: tuple
    normalization: str
    metadata: dict


# --- model builders -----------------------------------------------------------------


def _build_single_task(config):
    """The single-task ResNet baseline (``sharing: single_task``)."""
    (task, options), = config.tasks.items()
    height, width = config.data.image_size
    if height != width:
        raise ConfigError(f"data.image_size: the ResNet baseline needs square images, "
                          f"got {list(config.data.image_size)}")
    backbone = config.backbone
    head = {"num_classes": options.num_classes} if task == "expression" else {}
    return build_baseline_model(
        task=task, **head, depth=backbone.depth, width=backbone.width, input_size=height,
        stem=backbone.stem, sync_batch_norm=backbone.sync_batch_norm, task_weight=config.task_weight(task),
    )


#: sharing name -> function(config) -> MultiTaskModel. Extend with register_model_builder.
MODEL_BUILDERS = {"single_task": _build_single_task, "stacked": build_hu2018_model,
                  "facebehaviornet": build_facebehaviornet_model}


def register_model_builder(sharing, builder):
    """Use ``builder(config)`` to build models for configs with ``sharing: {name: sharing}``."""
    MODEL_BUILDERS[sharing] = builder


# --- optimiser and schedule ---------------------------------------------------------


def make_schedule(schedule, learning_rate, steps_per_epoch, epochs):
    """A float or ``LearningRateSchedule`` over optimiser steps for ``schedule`` (config)."""
    schedules = keras.optimizers.schedules
    if schedule.name == "constant":
        return learning_rate
    if schedule.name == "cosine":
        return schedules.CosineDecay(learning_rate, decay_steps=steps_per_epoch * epochs,
                                     alpha=schedule.alpha)
    if schedule.name == "step":
        boundaries = [int(epoch * steps_per_epoch) for epoch in schedule.boundaries]
        values = [learning_rate * schedule.factor**i for i in range(len(boundaries) + 1)]
        return schedules.PiecewiseConstantDecay(boundaries, values)
    return schedules.ExponentialDecay(learning_rate, decay_steps=steps_per_epoch,
                                      decay_rate=schedule.decay_rate)


def make_optimizer(optimizer, learning_rate):
    """The Keras optimiser named by ``optimizer`` (config) with ``learning_rate``."""
    options = {}
    if optimizer.weight_decay is not None:
        options["weight_decay"] = optimizer.weight_decay
    if optimizer.clipnorm is not None:
        options["clipnorm"] = optimizer.clipnorm
    if optimizer.name == "sgd":
        return keras.optimizers.SGD(learning_rate, **options)
    if optimizer.name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=optimizer.momentum,
                                    nesterov=optimizer.nesterov, **options)
    if optimizer.name == "adam":
        return keras.optimizers.Adam(learning_rate, **options)
    return keras.optimizers.AdamW(learning_rate, **options)


def compile_model(model, config, steps_per_epoch):
    """Compile ``model`` with the config's optimiser, schedule and XLA switch."""
    learning_rate = make_schedule(config.schedule, config.optimizer.learning_rate,
                                  steps_per_epoch, config.epochs)
    model.compile(optimizer=make_optimizer(config.optimizer, learning_rate),
                  jit_compile=config.jit_compile)
    return model


# --- data ---------------------------------------------------------------------------


def _source_name(source):
    return source.name or Path(source.folder).name


def _source_kwargs(source):
    return {"folder": source.folder, "split": source.split, "batch_size": source.batch_size,
            "augment": source.augment, "folds": source.folds,
            "exclude_folds": source.exclude_folds, "keep_tasks": source.keep_tasks}


def make_datasets(config, sources, training, repeat):
    """One source: batch dicts; several: ``{source: batch dict}`` (zipped by the pipeline)."""
    data = config.data
    if len(sources) == 1:
        # Training drops the last partial batch: a tiny batch gives noisy batch-norm
        # statistics (and a batch of 1 crashes oneDNN's 1x1 strided conv gradient in TF
        # 2.21 on CPU). The multi-source pipeline always yields full batches.
        return make_dataset(**_source_kwargs(sources[0]), image_size=data.image_size,
                            training=training, normalization=data.normalization,
                            shuffle_buffer=data.shuffle_buffer, seed=config.seed,
                            repeat=repeat, drop_remainder=training)
    named = {_source_name(s): {**_source_kwargs(s), "shuffle_buffer": data.shuffle_buffer}
             for s in sources}
    if len(named) != len(sources):
        raise ConfigError(f"data: source names must be unique, got {sorted(named)}")
    steps = config.steps_per_epoch if training else config.validation_steps
    return make_multi_source_dataset(named, image_size=data.image_size, training=training,
                                     normalization=data.normalization, seed=config.seed,
                                     steps_per_epoch=steps)


def epoch_steps(config, source=""):
    """Optimiser steps per epoch: the config's, else one pass over the training data.

    One source: full batches only (``count // batch_size``); several: the batches of
    the longest source (``make_multi_source_dataset``'s definition).
    """
    if config.steps_per_epoch:
        return config.steps_per_epoch
    train = config.data.train
    counts = [count_records(s.folder, s.split, folds=s.folds, exclude_folds=s.exclude_folds)
              for s in train]
    if len(train) > 1:
        return max(math.ceil(n / s.batch_size) for n, s in zip(counts, train, strict=True))
    if counts[0] < train[0].batch_size:
        raise ConfigError(f"{source}: key 'data.train[0].batch_size': split "
                          f"{train[0].split!r} of {train[0].folder} has {counts[0]} records, "
                          f"fewer than one batch of {train[0].batch_size}")
    return counts[0] // train[0].batch_size


def _check_augment(config, source):
    """Validate every source's augment dict now, naming the config key on error."""
    for section in ("train", "validation"):
        for index, data_source in enumerate(getattr(config.data, section)):
            try:
                AugmentConfig.from_dict(data_source.augment or {})
            except (TypeError, ValueError, KeyError) as error:
                message = error.args[0] if error.args else error
                raise ConfigError(f"{source}: key 'data.{section}[{index}].augment': "
                                  f"{message}") from None


def resolve_config(config, source="<config>"):
    """Check the data sections, fill what the data decides (expression classes).

    Returns the dataset metadata recorded at export (vocabulary, AU names) from the
    first training source's manifest.
    """
    _check_augment(config, source)
    manifest = load_manifest(config.data.train[0].folder)
    vocabulary = list(manifest.get("vocabularies", {}).get("expression", []))
    expression = config.tasks.get("expression")
    if expression is not None and expression.num_classes is None:
        if not vocabulary:
            raise ConfigError(f"{source}: key 'tasks.expression.num_classes': not set, and "
                              f"{config.data.train[0].folder}/manifest.json has no "
                              f"expression vocabulary")
        expression.num_classes = len(vocabulary)
    return {"expression_vocabulary": vocabulary, "au_names": list(manifest.get("au_names", []))}


# --- running ------------------------------------------------------------------------


def initialize_from(model, path, source="<config>"):
    """Start from the weights of the ``.keras`` model at ``path`` (fine-tuning, ``init_from``).

    Weights are matched by layer; layers whose weights differ in number or shape (e.g. an
    expression head with another vocabulary, Hu et al. 2018 Table 7) keep their fresh
    initialisation (Keras ``skip_mismatch``, which warns about each skipped layer).
    """
    if not Path(path).is_file():
        raise ConfigError(f"{source}: key 'init_from': no such model file: {path}")
    model.load_weights(path, skip_mismatch=True)


@contextlib.contextmanager
def precision_policy(name):
    """Set Keras' global dtype policy for model building, and restore it afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def train_model(model, train_data, output_dir, epochs, validation_data=None,
                steps_per_epoch=None, validation_steps=None, callbacks=(), verbose="auto"):
    """``model.fit`` with the experiment callbacks (resume, checkpoints, logs).

    ``callbacks`` are extra Keras callbacks, run after the experiment's own.
    """
    callbacks = [*make_callbacks(output_dir, validation=validation_data is not None),
                 *callbacks]
    return model.fit(train_data, validation_data=validation_data, epochs=epochs,
                     steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                     callbacks=callbacks, shuffle=False, verbose=verbose)


def _as_config(config_or_path, overrides):
    """(validated config, name of its origin for error messages)."""
    if isinstance(config_or_path, ExperimentConfig):
        raw, source = config_to_dict(config_or_path), "<ExperimentConfig>"
    elif isinstance(config_or_path, dict):
        raw, source = dict(config_or_path), "<dict>"
    else:
        return load_config(config_or_path, overrides), str(config_or_path)
    return parse_config(apply_overrides(raw, overrides, source), source), source


def run_experiment(config_or_path, overrides=None, output_dir=None, verbose="auto"):
    """Train the experiment described by a config (path, dict or ExperimentConfig).

    ``overrides`` are ``key.sub=value`` strings (as ``fermtl-train --set``);
    ``output_dir`` replaces the config's. Writes ``config.yaml`` (resolved),
    checkpoints, logs, ``history.csv`` and ``model.keras`` into the output directory;
    rerunning an interrupted run resumes it.
    """
    config, source = _as_config(config_or_path, overrides)
    if output_dir is not None:
        config.output_dir = str(output_dir)
    if config.sharing.name not in MODEL_BUILDERS:
        raise ConfigError(f"{source}: key 'sharing.name': no model builder for "
                          f"{config.sharing.name!r}; known: {sorted(MODEL_BUILDERS)}")
    metadata = resolve_config(config, source)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    save_config(config, output / "config.yaml")
    keras.utils.set_random_seed(config.seed)

    steps = epoch_steps(config, source)
    train_data = make_datasets(config, config.data.train, training=True,
                               repeat=config.steps_per_epoch is not None)
    validation_data = None
    if config.data.validation:
        validation_data = make_datasets(config, config.data.validation, training=False,
                                        repeat=False)
    strategy = make_strategy(config.strategy)
    with precision_policy(config.precision), strategy.scope():
        model = MODEL_BUILDERS[config.sharing.name](config)
        if config.init_from:
            initialize_from(model, config.init_from, source)
        compile_model(model, config, steps)
    # A model whose AU head has its own vocabulary (FaceBehaviorNet) names it for export.
    metadata["au_names"] = list(getattr(model, "output_au_names", metadata["au_names"]))
    # A model may contribute its own callbacks (e.g. Hu et al.'s trace-norm rate logger).
    model_callbacks = getattr(model, "experiment_callbacks", lambda _: [])(output)
    history = train_model(model, train_data, output, config.epochs,
                          validation_data=validation_data,
                          steps_per_epoch=config.steps_per_epoch,
                          validation_steps=config.validation_steps,
                          callbacks=model_callbacks, verbose=verbose)
    model_path = output / "model.keras"
    model.save(model_path)
    return ExperimentResult(
        model=model, history=history.history, output_dir=output, config=config,
        model_path=model_path, input_size=tuple(config.data.image_size),
        normalization=config.data.normalization, metadata=metadata,
    )
