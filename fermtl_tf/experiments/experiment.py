"""``run_experiment``: config -> datasets, model, optimiser -> ``model.fit`` -> outputs.

Python use (the demo builds on this)::

    from fermtl_tf.experiments.experiment import run_experiment

    result = run_experiment("train/configs/baseline/expression_synthface.yaml",
                            overrides=["epochs=1"])
    result.export(result.output_dir / "saved_model")   # raw pixels in, named outputs out

Models are built by the builder of the method the config's ``method:`` section names
(``fermtl_tf/methods/<name>/``, its ``SPEC``), from the config and a :class:`DataInfo`
read once from the manifests; the method's optional hooks add compile arguments,
callbacks, the serving model and export metadata.

Several machines (``strategy: multi_worker``, ``MultiWorkerMirroredStrategy``): every
host runs the same command with its own ``TF_CONFIG`` and the same ``output_dir`` on a
folder they share. The chief (``fermtl_tf.training.strategy.worker_role``) owns the run
folder; every other worker checks it the same way, resumes from the chief's backup and
writes its own (identical) checkpoints, history and export into a scratch folder
(``ExperimentResult.output_dir``, removed by ``fermtl-train``), never into the chief's.
Each worker reads the whole input pipeline and keeps its part of every global batch
(auto-shard policy ``DATA``), so N workers see the batches one worker would.
"""

import contextlib
import dataclasses
import hashlib
import math
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from fermtl_tf.data.augment import AugmentConfig
from fermtl_tf.data.pipeline import (
    LABEL_TASKS,
    count_records,
    labelled_tasks,
    make_dataset,
    make_multi_source_dataset,
)
from fermtl_tf.data.preprocess import as_preprocess_config
from fermtl_tf.experiments.config import (
    FOLD_PLACEHOLDER,
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_config,
    save_config,
    unfilled_fold_keys,
)
from fermtl_tf.experiments.data_info import build_data_info, source_name
from fermtl_tf.experiments.run_folder import (
    backed_up_history,
    best_so_far,
    prepare_run_folder,
    restored_history,
)
from fermtl_tf.export import export_saved_model
from fermtl_tf.methods import get_method
from fermtl_tf.training.callbacks import WorkerBackupAndRestore, make_callbacks, resumed_epoch
from fermtl_tf.training.halving import HalveOnRiseOrStall
from fermtl_tf.training.strategy import make_strategy, worker_role


@dataclasses.dataclass
class ExperimentResult:
    """What a finished run hands back; ``serving_model`` and ``metadata`` feed
    ``export_saved_model``."""

    model: keras.Model
    history: dict
    output_dir: Path
    config: ExperimentConfig
    model_path: Path
    input_size: tuple
    normalization: str
    metadata: dict
    serving_model: keras.Model = None
    add_endpoints: object = None  # fn(archive): the method's extra export endpoints
    preprocess: dict = None  # data.preprocess, applied in the exported graph too
    centre_crop: float = None  # the training random_crop: fermtl-eval's centre window
    scratch: bool = False  # output_dir is a non-chief worker's scratch folder

    def discard_scratch(self):
        """Remove a non-chief worker's scratch folder (after its export); no-op on the chief."""
        if self.scratch:
            shutil.rmtree(self.output_dir, ignore_errors=True)

    def export(self, export_dir):
        """Export ``serving_model`` as a SavedModel taking raw pixels (``fermtl_tf.export``)."""
        return export_saved_model(self.serving_model, export_dir, input_size=self.input_size,
                                  normalization=self.normalization, metadata=self.metadata,
                                  add_endpoints=self.add_endpoints,
                                  preprocess=self.preprocess, centre_crop=self.centre_crop)


# --- optimiser and schedule ---------------------------------------------------------


def make_schedule(schedule, learning_rate, steps_per_epoch, epochs):
    """A float or ``LearningRateSchedule`` over optimiser steps for ``schedule`` (config)."""
    schedules = keras.optimizers.schedules
    if schedule.name in ("constant", "halve_on_rise_or_stall"):  # the latter: a callback
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


def schedule_callbacks(schedule, output_dir):
    """The callbacks a schedule needs: the §5.2 rule of Liu et al. 2017 resumes from the
    finished epochs' history (its best-loss weights in ``checkpoints/``); others none."""
    if schedule.name != "halve_on_rise_or_stall":
        return []
    rows = restored_history(output_dir, resumed_epoch(output_dir))
    return [HalveOnRiseOrStall(Path(output_dir) / "checkpoints" / "best_loss.weights.h5",
                               factor=schedule.factor, loss_rise=schedule.loss_rise,
                               patience=schedule.patience, monitor=schedule.monitor,
                               history=rows)]


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


def compile_model(model, config, steps_per_epoch, extra=None):
    """Compile ``model`` with the config's optimiser, schedule and XLA switch.

    ``extra`` are further ``compile`` arguments a method's ``compile_kwargs`` hook gives
    (e.g. a second optimiser).
    """
    learning_rate = make_schedule(config.schedule, config.optimizer.learning_rate,
                                  steps_per_epoch, config.epochs)
    model.compile(optimizer=make_optimizer(config.optimizer, learning_rate),
                  jit_compile=config.jit_compile, **(extra or {}))
    build_optimizer(model)
    return model


def build_optimizer(model):
    """Create the optimiser's slots on a built model's trainable variables before ``fit``.

    Left to ``fit``, the slots are created inside the first traced step, and a
    ``tf.function`` that creates variables on its first call is traced a second time:
    every run paid two traces of its training step (measured on the smoke configs: Hu et
    al.'s ResNet-18 step, ~6 s each). Keras builds the optimiser this way itself, but only
    for a model created under a non-default ``tf.distribute`` strategy. Methods with
    optimisers on their own variable subsets (FERSNet, meta-MTL) build them in ``compile``;
    those are left alone."""
    if model.built and model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


# --- data ---------------------------------------------------------------------------


def _source_kwargs(source):
    return {"folder": source.folder, "split": source.split, "batch_size": source.batch_size,
            "augment": source.augment, "folds": source.folds,
            "exclude_folds": source.exclude_folds, "keep_tasks": source.keep_tasks,
            "holdout": source.holdout}


def make_datasets(config, sources, training, steps=None, first_epoch=0):
    """One source: batch dicts; several: ``{source: batch dict}`` (zipped by the pipeline).

    Training reads the pipeline's endless training stream from the step a run that has
    done ``first_epoch`` epochs of ``steps`` steps reached (``fit`` is given
    ``steps_per_epoch``), so a resumed run sees the batches an uninterrupted one would.
    Evaluation reads each selection once (several sources: ``validation_steps`` steps).
    """
    data = config.data
    first_step = first_epoch * steps if training else 0
    if len(sources) == 1:
        # Training drops the last partial batch: a tiny batch gives noisy batch-norm
        # statistics (and a batch of 1 crashes oneDNN's 1x1 strided conv gradient in TF
        # 2.21 on CPU). The multi-source pipeline always yields full batches.
        return make_dataset(**_source_kwargs(sources[0]), image_size=data.image_size,
                            training=training, normalization=data.normalization,
                            preprocess=data.preprocess,
                            shuffle_buffer=data.shuffle_buffer, seed=config.seed,
                            deterministic=config.deterministic, repeat=training,
                            drop_remainder=training,
                            first_record=first_step * sources[0].batch_size)
    named = {source_name(s): {**_source_kwargs(s), "shuffle_buffer": data.shuffle_buffer}
             for s in sources}
    if len(named) != len(sources):
        raise ConfigError(f"data: source names must be unique, got {sorted(named)}")
    return make_multi_source_dataset(named, image_size=data.image_size, training=training,
                                     normalization=data.normalization,
                                     preprocess=data.preprocess, seed=config.seed,
                                     deterministic=config.deterministic,
                                     steps_per_epoch=steps if training else
                                     config.validation_steps,
                                     epochs=None if training else 1, first_step=first_step)


def epoch_steps(config, source=""):
    """Optimiser steps per epoch: the config's, else one pass over the training data.

    One source: full batches only (``count // batch_size``); several: the batches of
    the longest source (``make_multi_source_dataset``'s definition).
    """
    if config.steps_per_epoch:
        return config.steps_per_epoch
    train = config.data.train
    counts = [count_records(s.folder, s.split, folds=s.folds, exclude_folds=s.exclude_folds,
                            holdout=s.holdout) for s in train]
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
    try:
        as_preprocess_config(config.data.preprocess)
    except (TypeError, ValueError, KeyError) as error:
        message = error.args[0] if error.args else error
        raise ConfigError(f"{source}: key 'data.preprocess': {message}") from None


def training_input(spec, config, source="<config>"):
    """(training dataset, optimiser steps per epoch): the method's ``train_dataset`` hook
    (its cardinality gives the steps, or it returns an endless stream with its steps),
    else (no hook, or it returns None) the configured sources' batches."""
    hook = spec.resolve("train_dataset")
    first_epoch = resumed_epoch(config.output_dir)
    dataset = None if hook is None else hook(config, first_epoch)
    if isinstance(dataset, tuple):  # (endless training stream, steps per epoch)
        return dataset
    if dataset is None:
        steps = epoch_steps(config, source)
        return (make_datasets(config, config.data.train, training=True, steps=steps,
                              first_epoch=first_epoch), steps)
    steps = config.steps_per_epoch or int(dataset.cardinality())
    if steps < 1:
        raise ConfigError(f"{source}: key 'steps_per_epoch': method {spec.name!r}'s training "
                          f"input has no known length; set steps_per_epoch")
    if config.steps_per_epoch:
        dataset = dataset.repeat()
    return dataset, steps


def resolve_config(config, source="<config>"):
    """Check the data sections, read the manifests into a ``DataInfo`` and fill what the
    data decides (the number of expression classes)."""
    _check_augment(config, source)
    data = build_data_info(config, duplicate_error=ConfigError)
    expression = config.tasks.get("expression")
    if expression is not None and expression.num_classes is None:
        if not data.expression_vocabulary:
            raise ConfigError(f"{source}: key 'tasks.expression.num_classes': not set, and "
                              f"no training source's manifest.json has an expression "
                              f"vocabulary ({config.data.train[0].folder}, ...)")
        expression.num_classes = len(data.expression_vocabulary)
    return data


@contextlib.contextmanager
def dataset_errors(source="<config>"):
    """Turn the reader's errors about a dataset folder (no manifest, malformed manifest,
    a split or fold it does not hold; each names the folder) into ConfigErrors, which
    ``fermtl-train`` reports as one line."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, KeyError, FileNotFoundError) as error:
        message = error.args[0] if error.args else repr(error)
        raise ConfigError(f"{source}: {message}") from None


def check_training_labels(config, source="<config>"):
    """ConfigError naming the task and the folders when a configured task has no label in
    any training source (every mask 0): it would train on a loss of exactly 0.

    With FaceBehaviorNet's ``co_annotation`` coupling (Kollias et al. §3.1.2) expression
    and AU labels stand in for each other, so either one labels both.
    """
    tasks = [task for task in config.tasks if task in LABEL_TASKS]
    found = set()
    for s in config.data.train:
        found |= labelled_tasks(s.folder, tasks, split=s.split, folds=s.folds,
                                exclude_folds=s.exclude_folds, holdout=s.holdout,
                                keep_tasks=s.keep_tasks)
    if getattr(config.coupling, "name", None) == "co_annotation" and found & {"expression", "au"}:
        found |= {"expression", "au"}
    missing = [task for task in tasks if task not in found]
    if missing:
        folders = ", ".join(f"{s.folder} (split {s.split!r})" for s in config.data.train)
        raise ConfigError(f"{source}: key 'tasks.{missing[0]}': no training record has "
                          f"{' or '.join(missing)} labels (every mask is 0) in {folders}; "
                          f"remove the task or add a source that labels it")


@contextlib.contextmanager
def op_determinism(enabled):
    """TensorFlow's op determinism (``enable_op_determinism``) on while the block runs,
    when ``enabled``; the process's previous setting is restored afterwards.

    With it, ops pick deterministic kernels or raise (GPU scatter/segment reductions,
    cuDNN autotuning; tf.data runs stateful map functions in order). Its cost is measured
    by ``benchmarks/determinism_cost.py``.
    """
    previous = tf_config.is_op_determinism_enabled()
    if enabled:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not previous:
            tf_config.disable_op_determinism()  # no public switch-off in TF 2.21


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
                steps_per_epoch=None, validation_steps=None, callbacks=(), verbose="auto",
                chief_dir=None, fresh=False):
    """``model.fit`` with the experiment callbacks (resume, checkpoints, logs).

    ``callbacks`` are extra Keras callbacks, run after the experiment's own. A resumed
    run's ``history.csv`` is cut back to the epochs the backup holds, and the best-model
    checkpoint continues from their best ``val_loss``. A non-chief worker writes into
    ``output_dir`` (its scratch folder) and resumes from the chief's run folder
    ``chief_dir`` (unless ``fresh``: a restart), taking the chief's best value so that it
    saves when the chief does.
    """
    backup = None
    if chief_dir is None:
        rows = restored_history(output_dir, resumed_epoch(output_dir))
    else:
        rows = [] if fresh else backed_up_history(chief_dir, resumed_epoch(chief_dir))
        backup = WorkerBackupAndRestore(Path(output_dir) / "backup",
                                        None if fresh else Path(chief_dir) / "backup")
    callbacks = [*make_callbacks(output_dir, validation=validation_data is not None,
                                 best=best_so_far(rows), backup=backup),
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


def run_experiment(config_or_path, overrides=None, output_dir=None, verbose="auto",
                   callbacks=(), restart=False, source=None):
    """Train the experiment described by a config (path, dict or ExperimentConfig).

    ``overrides`` are ``key.sub=value`` strings (as ``fermtl-train --set``);
    ``output_dir`` replaces the config's. Writes ``config.yaml`` (resolved),
    checkpoints, logs, ``history.csv`` and ``model.keras`` into the output directory;
    rerunning an interrupted run resumes it (with the same config but for ``epochs``;
    ``run_folder``). A finished run is not overwritten unless ``restart``, which starts
    over in place. ``callbacks`` are extra Keras callbacks, run after the experiment's
    and the method's own. ``source`` names the config in error messages (default: its
    path, or the kind of object given). Under ``strategy: multi_worker`` a non-chief
    worker's outputs go to a scratch folder (see the module docstring).
    """
    config, origin = _as_config(config_or_path, overrides)
    source = source or origin
    if output_dir is not None:
        config.output_dir = str(output_dir)
    spec = get_method(config.method.name)
    for key in unfilled_fold_keys(config):
        raise ConfigError(f"{source}: key {key!r}: {FOLD_PLACEHOLDER} is filled per round "
                          f"by fermtl-train CONFIG --folds all (or --folds K); without "
                          f"--folds, set the path with --set")
    role, strategy = _distribution(config.strategy, source)
    with dataset_errors(source):
        prepare_data(spec, config, source, role.chief)
        data = resolve_config(config, source)
        check_training_labels(config, source)
    output = Path(config.output_dir)
    if role.chief:
        prepare_run_folder(config, restart=restart, source=source)
        output.mkdir(parents=True, exist_ok=True)
    else:
        if not restart:  # the chief's refusals, on the folder it owns (read only)
            prepare_run_folder(config, source=source)
        output = worker_scratch(output, role.index)
    save_config(config, output / "config.yaml")
    keras.utils.set_random_seed(config.seed)
    with op_determinism(config.deterministic):
        model, history = _fit(spec, config, data, output, source, verbose, callbacks,
                              strategy, chief_dir=None if role.chief else Path(config.output_dir),
                              fresh=restart)
    model_path = output / "model.keras"
    return ExperimentResult(
        model=model, history=history.history, output_dir=output, config=config,
        model_path=model_path, input_size=tuple(config.data.image_size),
        normalization=config.data.normalization, metadata=export_metadata(spec, model, data),
        serving_model=serving_model(spec, model),
        add_endpoints=export_endpoints(spec, model, config),
        preprocess=config.data.preprocess,
        centre_crop=(config.data.train[0].augment or {}).get("random_crop"),
        scratch=not role.chief,
    )


def prepare_data(spec, config, source, chief):
    """The method's ``prepare_data`` hook: it writes data the run derives before any
    manifest is read (FERSNet's FES-DA syntheses). The chief writes; another worker
    expects what the chief wrote (shared folders)."""
    hook = spec.resolve("prepare_data")
    if hook is not None and chief:
        hook(config, source)


def worker_scratch(output, index):
    """A non-chief worker's empty scratch folder for the run in ``output``: the same path
    for the same run and worker, so that a restart after a kill removes what the killed
    worker left there."""
    digest = hashlib.sha256(str(output.resolve()).encode("utf-8")).hexdigest()[:16]
    scratch = Path(tempfile.gettempdir()) / f"fermtl-worker{index}-{digest}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    return scratch


def shard_by_data(dataset):
    """``dataset`` with the auto-shard policy ``DATA``: under a multi-worker strategy
    every worker runs the whole pipeline (same order, same augmentation seeds) and keeps
    its part of each global batch, so the workers' batches together are the batch one
    worker would see. (``FILE``, the default for file readers, would give each worker
    other shards, and batches no single-worker run has.)"""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def _distribution(name, source):
    """(this process's ``WorkerRole``, the strategy ``name``), made before any other
    TensorFlow op: a ``MultiWorkerMirroredStrategy`` configures the process's collective
    ops, which TensorFlow allows only before its context starts."""
    try:
        role = worker_role(name)
        return role, make_strategy(name)
    except ValueError as error:
        raise ConfigError(f"{source}: key 'strategy': {error}") from None
    except RuntimeError as error:  # "Collective ops must be configured at program startup"
        raise ConfigError(f"{source}: key 'strategy': {error}; start strategy "
                          f"'multi_worker' runs in a fresh process (fermtl-train)") from None


def _fit(spec, config, data, output, source, verbose, callbacks, strategy, chief_dir=None,
         fresh=False):
    """Datasets, model, compile, ``fit`` and ``model.keras``: (model, History).

    ``chief_dir`` and ``fresh``: a non-chief worker's (``train_model``).
    """
    with dataset_errors(source):
        train_data, steps = training_input(spec, config, source)
        validation_data = None
        if config.data.validation:
            validation_data = make_datasets(config, config.data.validation, training=False)
    if config.strategy == "multi_worker":
        train_data = shard_by_data(train_data)
        validation_data = validation_data and shard_by_data(validation_data)
    with precision_policy(config.precision), strategy.scope():
        model = spec.resolve("builder")(config, data)
        if config.init_from:
            initialize_from(model, config.init_from, source)
        compile_kwargs = spec.resolve("compile_kwargs")
        compile_model(model, config, steps,
                      compile_kwargs(model, config, steps) if compile_kwargs else None)
    method_callbacks = spec.resolve("callbacks")
    history = train_model(model, train_data, output, config.epochs,
                          validation_data=validation_data,
                          steps_per_epoch=steps,
                          validation_steps=config.validation_steps,
                          callbacks=[*schedule_callbacks(config.schedule, output),
                                     *(method_callbacks(model, config, output)
                                       if method_callbacks else ()), *callbacks],
                          verbose=verbose, chief_dir=chief_dir, fresh=fresh)
    # model.keras marks a finished run (run_folder): written whole or not at all.
    partial = output / "model.partial.keras"
    model.save(partial)
    os.replace(partial, output / "model.keras")
    return model, history


def export_metadata(spec, model, data):
    """What ``fermtl_export.json`` records: the data's vocabulary and AU names, the method,
    and whatever the method's ``export_metadata`` hook adds (e.g. its own AU vocabulary)."""
    metadata = {"expression_vocabulary": list(data.expression_vocabulary),
                "au_names": list(data.au_names), "method": spec.name}
    hook = spec.resolve("export_metadata")
    if hook is not None:
        metadata.update(hook(model, data))
    return metadata


def export_endpoints(spec, model, config):
    """``fn(archive)`` adding the method's extra endpoints, or None."""
    hook = spec.resolve("export_endpoints")
    if hook is None:
        return None
    size, normalization = tuple(config.data.image_size), config.data.normalization
    return lambda archive: hook(archive, model, size, normalization)


def serving_model(spec, model):
    """The model ``export`` serves: the method's ``serving_model`` hook, else the model."""
    hook = spec.resolve("serving_model")
    return model if hook is None else hook(model)
