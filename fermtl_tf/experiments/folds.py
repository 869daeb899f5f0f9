"""k-fold cross-validation by config: train -> export -> evaluate every round, mean +- sd.

``fermtl-train CONFIG --folds all`` (or ``--folds 0,3``) runs :func:`run_folds`: for each
round k the training sources keep the training folds of
``fermtl_tf.data.protocols.fold_roles`` (folds of the first training source's manifest),
the validation sources are the same folders on the validation folds (when
``cross_validation.val_folds`` > 0), the model goes to ``<output_dir>/fold_<k>/`` and its
SavedModel is evaluated on fold k by ``fermtl_tf.evaluation.evaluate_fold_models``, which
writes ``<output_dir>/folds/folds.json`` and ``folds.md`` (mean and sd over rounds).

A chained protocol gives each round its own inputs with ``{fold}`` in ``init_from`` and
in a training source's ``folder`` (FERSNet's FES-DA: ``init_from:
runs/fersnet/ckplus/fold_{fold}/model.keras`` and that round's synthetic folder), filled
with the round's test fold; the method's ``prepare_data`` hook (run by
``run_experiment``) then writes what the round derives, e.g. the syntheses.
"""

import copy
import dataclasses
from pathlib import Path

from fermtl_tf.data.pipeline import available_folds, load_manifest
from fermtl_tf.data.protocols import fold_roles
from fermtl_tf.errors import ConfigError
from fermtl_tf.experiments.config import FOLD_PLACEHOLDER, CrossValidationConfig
from fermtl_tf.experiments.run_folder import is_finished_run
from fermtl_tf.export import METADATA_FILE


def parse_fold_selection(text, available):
    """``"all"`` or ``"0,3"`` -> the fold numbers to test, each one the manifest has."""
    if text == "all":
        return list(available)
    try:
        chosen = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--folds: expected 'all' or a comma list of fold numbers, "
                          f"got {text!r}") from None
    unknown = sorted(set(chosen) - set(available))
    if unknown or not chosen:
        raise ConfigError(f"--folds: folds {unknown or text!r} are not among the data's "
                          f"folds {list(available)}")
    return chosen


def round_config(config, test_fold, available, output_dir):
    """The config of the round that tests ``test_fold``: training and validation folds set."""
    protocol = config.cross_validation or CrossValidationConfig()
    position = available.index(test_fold)
    train, val, _ = fold_roles(len(available), position, protocol.val_folds)
    train = [available[i] for i in train]
    val = [available[i] for i in val]
    run = copy.deepcopy(config)
    run.output_dir = str(output_dir)
    if config.init_from:
        run.init_from = fill_fold(config.init_from, test_fold)
    run.data.train = [dataclasses.replace(s, folder=fill_fold(s.folder, test_fold), folds=train,
                                          exclude_folds=None)
                      for s in config.data.train]
    run.data.validation = [dataclasses.replace(s, folds=val, exclude_folds=None,
                                               augment=evaluation_augment(s.augment))
                           for s in run.data.train] if val else []
    return run


def fill_fold(template, fold):
    """``template`` with ``{fold}`` replaced by the round's test fold."""
    return template.replace(FOLD_PLACEHOLDER, str(fold))


def check_round_models(config, folds):
    """ConfigError, before any training, when a round's ``init_from`` (with ``{fold}``,
    a model per round) is missing: it names the file and the run that writes it."""
    if not config.init_from or FOLD_PLACEHOLDER not in config.init_from:
        return
    for fold in folds:
        path = Path(fill_fold(config.init_from, fold))
        if path.is_file():
            continue
        run_dir = path.parent.parent if path.parent.name == f"fold_{fold}" else path.parent
        raise ConfigError(f"--folds: key 'init_from': round {fold}'s model {path} does not "
                          f"exist; train it first: fermtl-train CONFIG --folds {fold} (or "
                          f"--folds all), CONFIG being the config with output_dir: {run_dir}")


def evaluation_augment(augment):
    """What a training source's ``augment`` leaves at evaluation: its random crop (the
    reader then takes the centre window, Liu et al. 2017 Sec. 5.1), nothing else."""
    crop = (augment or {}).get("random_crop")
    return {"random_crop": crop} if crop else None


def run_folds(config, folds="all", verbose="auto", restart=False):
    """Run every selected round of the k-fold protocol; the evaluation summary (with
    ``aggregate`` {metric: {per_fold, mean, std}}).

    A rerun resumes: a round that finished with the same config (and was exported) is
    reused, an interrupted one resumes; ``restart`` retrains every round from scratch.
    """
    from fermtl_tf.evaluation import BENCHMARKS, evaluate_fold_models
    from fermtl_tf.experiments.experiment import dataset_errors, run_experiment

    first = config.data.train[0]
    if FOLD_PLACEHOLDER in first.folder:
        raise ConfigError(f"--folds: key 'data.train[0].folder': {first.folder!r} holds "
                          f"{FOLD_PLACEHOLDER}, but the first training source holds the folds")
    with dataset_errors("--folds"):
        available = available_folds(load_manifest(first.folder))
    if len(available) < 2:
        raise ConfigError(f"--folds: {first.folder}/manifest.json counts folds {available}; "
                          f"prepare it with --folds K (K >= 2)")
    protocol = config.cross_validation or CrossValidationConfig()
    if protocol.benchmark not in BENCHMARKS:  # before hours of training, not after
        raise ConfigError(f"cross_validation.benchmark: unknown benchmark "
                          f"{protocol.benchmark!r}; known: {sorted(BENCHMARKS)}")
    selected = parse_fold_selection(folds, available)
    check_round_models(config, selected)
    base = Path(config.output_dir)
    exports = {}
    for fold in selected:
        run = round_config(config, fold, available, base / f"fold_{fold}")
        export = Path(run.output_dir) / "export"
        if not restart and is_finished_run(run) and (export / METADATA_FILE).is_file():
            exports[fold] = export
            continue
        result = run_experiment(run, verbose=verbose, restart=restart)
        exports[fold] = result.export(export)
    return evaluate_fold_models(exports, first.folder, protocol.benchmark, split=first.split,
                                out_dir=base / "folds", sequence_vote=protocol.sequence_vote)
