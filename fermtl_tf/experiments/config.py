"""Experiment configs: YAML validated into dataclasses, errors naming the key and the file.

A config file (``yaml.safe_load``) maps onto :class:`ExperimentConfig`::

    base: ../common.yaml         # optional: deep-merged under this file (paths relative to it)
    name: baseline_expression_synthface
    seed: 0
    output_dir: runs/baseline/expression_synthface
    method: {name: baseline}     # selects the method folder (fermtl-train --list-methods)
    data:
      train: [{folder: data/synthface, split: train, batch_size: 64, augment: {flip: true}}]
      validation: [{folder: data/synthface, split: val, batch_size: 64}]
      image_size: [96, 96]
      normalization: minus_one_one
    backbone: {name: resnet, depth: 34, width: 64, stem: imagenet}
    tasks: {expression: {num_classes: null}}     # null: from the dataset manifest
    sharing: {name: single_task}
    coupling: {name: none}
    weighting: {name: fixed, weights: {expression: 1.0}}
    optimizer: {name: momentum, learning_rate: 0.01, momentum: 0.9}
    schedule: {name: cosine}
    epochs: 10
    strategy: auto               # auto | mirrored | multi_worker | one_device
    precision: float32           # float32 | mixed_float16 | mixed_bfloat16
    jit_compile: false

Relative paths (data folders, ``output_dir``) are relative to the working directory.

Extension points: ``method`` selects a registered method (``fermtl_tf/methods/<name>/``,
its ``SPEC``), whose dataclass validates the section. ``sharing``, ``coupling`` and
``weighting`` are *variant* sections (the three axes) whose ``name`` selects a dataclass:
the core ones here, plus those a method declares in ``MethodSpec.variants``. ``tasks``
keys are rows of the task table (``fermtl_tf/training/tasks.py``). Nothing here imports
TensorFlow, so ``fermtl-train --check`` validates a config at once.
"""

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from fermtl_tf.config_files import deep_merge, read_raw_config  # noqa: F401 (re-exported)
from fermtl_tf.errors import ConfigError
from fermtl_tf.methods import get_method, list_methods
from fermtl_tf.training.tasks import TASKS

#: A float written without a dot in the mantissa (``1e-3``), which PyYAML leaves a string.
_FLOAT_LITERAL = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")
#: What ``fermtl-train --folds`` writes, per round, for the test fold's number in
#: ``init_from`` and in a training source's ``folder`` (``experiments.folds.round_config``):
#: the rounds of a chained protocol (FERSNet's FES-DA) each start from their own model.
FOLD_PLACEHOLDER = "{fold}"
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


# --- sections ---------------------------------------------------------------------------


@dataclasses.dataclass
class SourceConfig:
    """One prepared dataset folder read through ``fermtl_tf.data.pipeline.make_dataset``."""

    folder: str
    split: str | list[str] | None = "train"  # name(s); "unassigned"; null: every record
    batch_size: int = 32
    augment: dict[str, Any] | None = None
    name: str | None = None  # source name in multi-source batches (default: folder name)
    folds: list[int] | None = None  # keep only these folds (cross-validation protocols)
    exclude_folds: list[int] | None = None  # drop these folds
    keep_tasks: list[str] | None = None  # unlabel every other task (pipeline.LABEL_TASKS)
    # a seeded part of the selection: {fraction, seed, part: holdout|rest, stratify}
    # (pipeline.make_dataset), e.g. MML's held-out quarter feeding the meta batch
    holdout: dict[str, Any] | None = None


@dataclasses.dataclass
class DataConfig:
    train: list[SourceConfig]
    validation: list[SourceConfig] = dataclasses.field(default_factory=list)
    image_size: tuple[int, int] = (96, 96)
    normalization: Literal["minus_one_one", "zero_one", "per_image", "none"] = "minus_one_one"
    shuffle_buffer: int = 1024
    # grayscale / histogram_equalization / plane_fit before the normalisation, in training,
    # evaluation and the export alike (data.preprocess.PreprocessConfig; Liu et al. §5.1)
    preprocess: dict[str, Any] | None = None


@dataclasses.dataclass
class BackboneConfig:
    name: Literal["resnet", "facebehaviornet", "vgg16", "resnet50", "densenet121"] = "resnet"
    depth: Literal[18, 34] = 34
    width: int = 64
    stem: Literal["imagenet", "compact"] = "imagenet"
    sync_batch_norm: bool = False
    weights: str | None = None  # keras.applications backbones: a weights file (else random)


@dataclasses.dataclass
class SingleTaskSharing:
    """Each task its own network: the baseline (Hu et al. 2018, Table 4 "Single task")."""

    name: str = "single_task"


@dataclasses.dataclass
class HardSharing:
    """Every task head on one shared network (FaceBehaviorNet §3.3, Fig. 1)."""

    name: str = "hard"


@dataclasses.dataclass
class NoCoupling:
    name: str = "none"


@dataclasses.dataclass
class FixedWeighting:
    """Constant lambda per named loss (a loss without an entry gets 1.0); ``ramps`` move a
    loss's lambda linearly from ``[start, end]`` over the run (FERSNet's lambda_4)."""

    name: str = "fixed"
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    ramps: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class OptimizerConfig:
    name: Literal["sgd", "momentum", "adam", "adamw"] = "momentum"
    learning_rate: float = 0.01
    momentum: float = 0.9  # sgd ignores it; momentum uses it
    nesterov: bool = False
    weight_decay: float | None = None
    clipnorm: float | None = None


@dataclasses.dataclass
class ScheduleConfig:
    """Learning-rate schedule over optimiser steps (epochs converted with steps_per_epoch).

    cosine: from ``learning_rate`` to ``alpha * learning_rate`` over all epochs;
    step: multiply by ``factor`` at each epoch in ``boundaries``;
    exponential: multiply by ``decay_rate`` every epoch (continuously);
    halve_on_rise_or_stall: multiply by ``factor`` and reload the best-loss weights when
    the training loss rises more than ``loss_rise`` over its best or ``monitor`` has not
    improved for ``patience`` epochs (Liu et al. 2017 §5.2; ``fermtl_tf.training.halving``).
    """

    name: Literal["constant", "cosine", "step", "exponential",
                  "halve_on_rise_or_stall"] = "constant"
    alpha: float = 0.0
    boundaries: list[int] = dataclasses.field(default_factory=list)
    factor: float = 0.1
    decay_rate: float = 0.9
    loss_rise: float = 0.25
    patience: int = 10
    monitor: str = "val_expression_accuracy"


#: Variant sections every method may read: section -> {name: dataclass}. A method adds
#: its own variants through its ``MethodSpec.variants``.
CORE_VARIANTS = {
    "sharing": {"single_task": SingleTaskSharing, "hard": HardSharing},
    "coupling": {"none": NoCoupling},
    "weighting": {"fixed": FixedWeighting},
}

#: Sharing names that selected a method before the ``method:`` section existed.
_LEGACY_SHARING = {"single_task": ("baseline", "single_task"), "stacked": ("hu2018", "stacked"),
                   "facebehaviornet": ("facebehaviornet", "hard")}


def variants(section):
    """{name: dataclass} of a variant section: the core ones and every method's."""
    known = dict(CORE_VARIANTS[section])
    for spec in list_methods():
        known.update(spec.variants.get(section, {}))
    return known


@dataclasses.dataclass
class CrossValidationConfig:
    """k-fold protocol run by ``fermtl-train CONFIG --folds all`` (``fermtl_tf.experiments.folds``).

    Round k tests fold k, validates on the ``val_folds`` folds after it and trains on
    the rest (``fermtl_tf.data.protocols.fold_roles``); the folds are those of the first
    training source's manifest. Each round's export is evaluated on its test fold with
    ``benchmark``'s metrics (``sequence_vote``: max / mean over a sequence's frames,
    Liu et al. 2017 on CK+ / MMI) and the rounds are reported as mean +- sd.
    """

    val_folds: int = 0
    benchmark: str = "synthface"
    sequence_vote: Literal["max", "mean"] | None = None


@dataclasses.dataclass
class ExperimentConfig:
    data: DataConfig
    tasks: dict[str, Any]
    output_dir: str
    method: Any = None  # the method's own dataclass (``method: {name: ...}``), required
    name: str = "experiment"
    seed: int = 0
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    sharing: Any = dataclasses.field(default_factory=SingleTaskSharing)
    coupling: Any = dataclasses.field(default_factory=NoCoupling)
    weighting: Any = dataclasses.field(default_factory=FixedWeighting)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    epochs: int = 1
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    strategy: Literal["auto", "mirrored", "multi_worker", "one_device"] = "auto"
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    jit_compile: bool = False
    init_from: str | None = None  # .keras model whose matching weights start the training
    # Ordered input pipelines (same batches in the same order every run; parallel map and
    # interleave keep their order, at some throughput cost).
    deterministic: bool = False
    cross_validation: CrossValidationConfig | None = None

    def task_weight(self, task):
        """The fixed weight of ``task`` (1.0 when the weighting section omits it)."""
        return float(getattr(self.weighting, "weights", {}).get(task, 1.0))


# --- validation -------------------------------------------------------------------------


class _Validator:
    """Checks raw YAML data against dataclass type hints; errors name file and key."""

    def __init__(self, source):
        self.source = source

    def error(self, key, message):
        return ConfigError(f"{self.source}: key '{key or '<root>'}': {message}")

    def dataclass(self, cls, raw, key):
        if not isinstance(raw, dict):
            raise self.error(key, f"expected a mapping, got {type(raw).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for name in raw:
            if name not in fields:
                raise self.error(_join(key, name),
                                 f"unknown key; allowed: {', '.join(sorted(fields))}")
        values = {}
        for name, field in fields.items():
            if name in raw:
                values[name] = self.section(cls, name, hints[name], raw[name], _join(key, name))
            elif (field.default is dataclasses.MISSING
                  and field.default_factory is dataclasses.MISSING):
                raise self.error(_join(key, name), "required key is missing")
        return cls(**values)

    def section(self, cls, name, hint, raw, key):
        """Dispatch the method, variant and task sections of ExperimentConfig."""
        if cls is ExperimentConfig and name == "method":
            return self.method(raw, key)
        if cls is ExperimentConfig and name in CORE_VARIANTS:
            return self.variant(name, raw, key)
        if cls is ExperimentConfig and name == "tasks":
            return self.tasks(raw, key)
        return self.value(hint, raw, key)

    def method(self, raw, key):
        names = [spec.name for spec in list_methods()]
        if not isinstance(raw, dict) or "name" not in raw:
            raise self.error(key, f"expected a mapping with a 'name' (one of {names})")
        try:
            spec = get_method(raw["name"])
        except KeyError:
            raise self.error(_join(key, "name"), f"unknown method {raw['name']!r}; "
                                                 f"known: {names}") from None
        return self.dataclass(spec.config, raw, key)

    def variant(self, section, raw, key):
        known = variants(section)
        if not isinstance(raw, dict) or "name" not in raw:
            raise self.error(key, f"expected a mapping with a 'name' (one of {sorted(known)})")
        choice = raw["name"]
        if choice not in known:
            raise self.error(_join(key, "name"),
                             f"unknown {section} {choice!r}; known: {sorted(known)}")
        return self.dataclass(known[choice], raw, key)

    def tasks(self, raw, key):
        if not isinstance(raw, dict) or not raw:
            raise self.error(key, f"expected a non-empty mapping of tasks "
                                  f"(known: {sorted(TASKS)})")
        tasks = {}
        for name, options in raw.items():
            if name not in TASKS:
                raise self.error(_join(key, name), f"unknown task; known: {sorted(TASKS)}")
            tasks[name] = self.dataclass(TASKS[name].options, options or {}, _join(key, name))
        return tasks

    def value(self, hint, raw, key):
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            return self.dataclass(hint, raw, key)
        if origin in (typing.Union, types.UnionType):
            if raw is None and type(None) in args:
                return None
            options = [a for a in args if a is not type(None)]
            errors = []
            for option in options:  # the first alternative that accepts the value
                try:
                    return self.value(option, raw, key)
                except ConfigError as error:
                    errors.append(error)
            raise errors[0]
        if origin is Literal:
            if raw not in args or isinstance(raw, bool) != isinstance(args[0], bool):
                raise self.error(key, f"must be one of {list(args)}, got {raw!r}")
            return raw
        if hint is Any:
            return raw
        if origin is list:
            self.expect(raw, list, "a list", key)
            return [self.value(args[0], item, f"{key}[{i}]") for i, item in enumerate(raw)]
        if origin is tuple:
            self.expect(raw, (list, tuple), f"a list of {len(args)} values", key)
            if len(raw) != len(args):
                raise self.error(key, f"expected {len(args)} values, got {len(raw)}")
            return tuple(self.value(a, item, f"{key}[{i}]") for i, (a, item)
                         in enumerate(zip(args, raw, strict=True)))
        if origin is dict:
            self.expect(raw, dict, "a mapping", key)
            return {self.value(args[0], k, key): self.value(args[1], v, _join(key, str(k)))
                    for k, v in raw.items()}
        return self.scalar(hint, raw, key)

    def scalar(self, hint, raw, key):
        if hint is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if hint is float and isinstance(raw, str) and _FLOAT_LITERAL.fullmatch(raw.strip()):
            return float(raw)  # YAML 1.1 (PyYAML) reads 1e-3 as a string
        if hint is int and isinstance(raw, bool):
            raise self.error(key, f"expected int, got bool {raw!r}")
        self.expect(raw, hint, hint.__name__, key)
        return raw

    def expect(self, raw, types_, description, key):
        if not isinstance(raw, types_):
            raise self.error(key, f"expected {description}, got {type(raw).__name__} {raw!r}")


def _join(key, name):
    return f"{key}.{name}" if key else str(name)


def _check_consistency(config, validator):
    """Cross-field rules the type hints cannot express; the method adds its own."""
    spec = get_method(config.method.name)
    unsupported = sorted(set(config.tasks) - set(spec.tasks))
    if unsupported:
        raise validator.error("tasks", f"method {spec.name!r} trains {list(spec.tasks)}; "
                                       f"not {unsupported}")
    for task in (*config.weighting.weights, *getattr(config.weighting, "ramps", {})):
        if task not in config.tasks and task not in spec.losses:
            raise validator.error(f"weighting.weights.{task}",
                                  f"weight for a loss that is neither a task in tasks nor "
                                  f"one of method {spec.name!r}'s losses {list(spec.losses)}")
    if not config.data.train:
        raise validator.error("data.train", "at least one training source is required")
    if config.schedule.name == "step" and not config.schedule.boundaries:
        raise validator.error("schedule.boundaries", "the step schedule needs boundaries")
    if config.optimizer.learning_rate <= 0:
        raise validator.error("optimizer.learning_rate",
                              f"must be > 0, got {config.optimizer.learning_rate}")
    for section in ("train", "validation"):
        for index, data_source in enumerate(getattr(config.data, section)):
            if data_source.batch_size < 1:
                raise validator.error(f"data.{section}[{index}].batch_size",
                                      f"must be >= 1, got {data_source.batch_size}")
    for name, weight in config.weighting.weights.items():
        if weight <= 0:
            raise validator.error(f"weighting.weights.{name}", f"must be > 0, got {weight} "
                                  f"(leave a task out of tasks to not train it)")
    for key in ("epochs", "steps_per_epoch", "validation_steps"):
        value = getattr(config, key)
        if value is not None and value < 1:
            raise validator.error(key, f"must be >= 1, got {value}")
    _check_placeholders(config, validator)
    if spec.check is not None:
        for key, message in spec.check(config):
            raise validator.error(key, message)


def fold_templates(config):
    """(key, value) of every config value that may hold ``{fold}``: ``init_from`` and
    the training sources' folders."""
    if config.init_from:
        yield "init_from", config.init_from
    for index, data_source in enumerate(config.data.train):
        yield f"data.train[{index}].folder", data_source.folder


def _check_placeholders(config, validator):
    """``{fold}`` is the only placeholder, and only where ``round_config`` fills it (the
    validation sources of a k-fold round are derived from the training sources)."""
    for key, value in fold_templates(config):
        for placeholder in _PLACEHOLDER.findall(value):
            if placeholder != FOLD_PLACEHOLDER:
                raise validator.error(key, f"unknown placeholder {placeholder!r} in {value!r}; "
                                           f"the only one is {FOLD_PLACEHOLDER!r} (the test "
                                           f"fold of a fermtl-train --folds round)")
    for index, data_source in enumerate(config.data.validation):
        if _PLACEHOLDER.search(data_source.folder):
            raise validator.error(f"data.validation[{index}].folder",
                                  f"placeholders are filled only in init_from and "
                                  f"data.train folders; got {data_source.folder!r}")


def unfilled_fold_keys(config):
    """Keys whose value still holds ``{fold}`` (a config run outside ``--folds``)."""
    return [key for key, value in fold_templates(config) if FOLD_PLACEHOLDER in value]


def _check_method_section(raw, validator):
    """A config must say ``method:``; an old one (method chosen by ``sharing.name``) is told
    what to rename."""
    if "method" in raw:
        return
    sharing = raw.get("sharing", {}).get("name") if isinstance(raw.get("sharing"), dict) else None
    if sharing in _LEGACY_SHARING:
        method, new_sharing = _LEGACY_SHARING[sharing]
        rename = (f" and rename sharing.name {sharing!r} to {new_sharing!r}"
                  if new_sharing != sharing else "")
        raise validator.error("method", f"missing: configs now select the method with a "
                                        f"'method:' section; add 'method: {{name: {method}}}'"
                                        f"{rename}")
    raise validator.error("method", f"required key is missing; one of "
                                    f"{[spec.name for spec in list_methods()]}")


def parse_config(raw, source="<dict>"):
    """Validate raw config data (a dict) into an :class:`ExperimentConfig`."""
    validator = _Validator(source)
    _check_method_section(raw, validator)
    config = validator.dataclass(ExperimentConfig, raw, "")
    _check_consistency(config, validator)
    return config


def apply_overrides(raw, overrides, source="<overrides>"):
    """Apply ``["optimizer.learning_rate=0.1", ...]`` to raw config data (in place).

    Values are parsed as YAML (``1e-3``, ``true``, ``[96, 96]``); list items are
    addressed by index (``data.train.0.batch_size=8``).
    """
    for override in overrides or ():
        path, sep, text = override.partition("=")
        if not sep or not path:
            raise ConfigError(f"{source}: --set expects key.sub=value, got {override!r}")
        keys = path.split(".")
        node = raw
        for depth, part in enumerate(keys[:-1]):
            node = _child(node, part, ".".join(keys[: depth + 1]), source)
        last = keys[-1]
        value = _override_value(text, path, source)
        if isinstance(node, list):
            node[_index(node, last, path, source)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"{source}: key '{'.'.join(keys[:-1])}': cannot set a sub-key "
                              f"of a scalar (--set {override!r})")
    return raw


def _override_value(text, key, source):
    """The YAML value of ``--set key=text``; a YAML error names the key."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: key '{key}': --set value {text!r} is not YAML "
                          f"({problem})") from None


def _child(node, part, key, source):
    if isinstance(node, list):
        return node[_index(node, part, key, source)]
    if not isinstance(node, dict):
        raise ConfigError(f"{source}: key '{key}': cannot set a sub-key of a scalar")
    return node.setdefault(part, {})


def _index(node, part, key, source):
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{source}: key '{key}': list index {part!r} out of range "
                          f"(list has {len(node)} items)")
    return int(part)


def load_config(path, overrides=None):
    """Read (with its bases), override and validate the YAML config at ``path``."""
    raw = read_raw_config(path)
    apply_overrides(raw, overrides, source=str(path))
    return parse_config(raw, source=str(path))


def config_to_dict(config):
    """Plain-data form of a config (tuples as lists), suitable for ``yaml.safe_dump``."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def save_config(config, path):
    """Write ``config`` as YAML; :func:`load_config` reads it back to an equal config."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
