"""``fermtl-train``: train the experiment described by a YAML config.

    fermtl-train train/configs/baseline/expression_synthface.yaml
    fermtl-train CONFIG.yaml --set epochs=2 --set optimizer.learning_rate=0.001 --output runs/x
    fermtl-train CONFIG.yaml --check      # validate only (no TensorFlow import)
    fermtl-train CONFIG.yaml --print      # the config with its bases merged, validated
    fermtl-train --list-methods           # one registered method per line, name first
    fermtl-train CONFIG.yaml --folds all  # k-fold: train, export, evaluate every round
    fermtl-train CONFIG.yaml --restart    # replace the run in the output folder

Config problems (unknown key, wrong type, unreadable file, missing dataset folder) are
reported as one line, ``fermtl-train: error: <file>: key '<key>': <message>``, with exit
status 2; so are a dataset folder without the requested split or with a malformed
manifest, a training task no training record labels, and a full disk. Rerunning an
interrupted run resumes it from its last finished epoch, with the same config except
``epochs`` (another difference is refused, naming the keys); a finished run is not
overwritten: ``--restart`` starts over in place, ``--output`` elsewhere. The trained
model is saved as ``model.keras`` and exported as a SavedModel that takes raw pixels
into ``<output_dir>/export`` (``fermtl_tf.export``), ready for ``fermtl-eval``.
"""

import argparse
import sys

import yaml

from fermtl_tf.experiments.config import ConfigError, config_to_dict, load_config
from fermtl_tf.methods import list_methods


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fermtl-train",
        description="Train a fermtl-tf experiment from a YAML config (see train/configs/).",
    )
    parser.add_argument("config", nargs="?", help="experiment config (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optimizer.learning_rate=0.1 "
                             "(values are YAML; repeatable)")
    parser.add_argument("--output", help="output directory (replaces the config's output_dir)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2,
                        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per "
                             "epoch (default)")
    parser.add_argument("--restart", action="store_true",
                        help="delete this run's outputs in the output directory (checkpoints, "
                             "backup, logs, history, model, export) and start over")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the SavedModel export into <output_dir>/export")
    parser.add_argument("--check", action="store_true",
                        help="validate the config and exit (TensorFlow is not imported)")
    parser.add_argument("--print", action="store_true", dest="print_config",
                        help="print the validated config, bases merged and overrides applied, "
                             "as YAML and exit")
    parser.add_argument("--folds", metavar="all|K,K",
                        help="run the config's k-fold protocol (cross_validation section): "
                             "train, export and evaluate each listed test fold, then report "
                             "mean +- sd over the rounds in <output_dir>/folds/")
    parser.add_argument("--list-methods", action="store_true",
                        help="print the registered methods, one per line (name first), and exit")
    return parser


def _fail(message):
    print(f"fermtl-train: error: {message}", file=sys.stderr)
    return 2


def os_error_line(error):
    """One line for an OSError (disk full, permission denied): the reason and the file."""
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename else reason


def print_methods():
    """One line per registered method: name, tasks, summary."""
    for spec in list_methods():
        print(f"{spec.name}\ttasks: {','.join(spec.tasks)}\t{spec.summary}")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_methods:
        print_methods()
        return 0
    if args.config is None:
        parser.error("the config argument is required (or give --list-methods)")
    try:
        # Validate before importing TensorFlow, so config mistakes are reported at once.
        config = load_config(args.config, args.set)
    except ConfigError as error:
        return _fail(error)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
        return 0
    if args.check:
        print(f"fermtl-train: {args.config}: valid (method {config.method.name})")
        return 0
    if args.output:
        config.output_dir = args.output
    if args.folds:
        return _run_folds(config, args)
    from fermtl_tf.experiments.experiment import run_experiment

    try:
        result = run_experiment(config, verbose=args.verbose, restart=args.restart,
                                source=args.config)
        # A non-chief worker saves and exports into its scratch folder, like the chief
        # (every worker must), then removes it: the chief writes the run's files.
        if not result.scratch:
            print(f"fermtl-train: model saved to {result.model_path}")
        if not args.no_export:
            export_dir = result.export(result.output_dir / "export")
            if not result.scratch:
                print(f"fermtl-train: SavedModel exported to {export_dir}")
        result.discard_scratch()
    except ConfigError as error:
        return _fail(error)
    except OSError as error:  # disk full, permissions: the run resumes once fixed
        return _fail(os_error_line(error))
    return 0


def _run_folds(config, args):
    from fermtl_tf.evaluation.runner import EvaluationInputError
    from fermtl_tf.experiments.folds import run_folds

    try:
        summary = run_folds(config, args.folds, verbose=args.verbose, restart=args.restart)
    except (ConfigError, FileNotFoundError, EvaluationInputError) as error:
        return _fail(error)
    except OSError as error:
        return _fail(os_error_line(error))
    for metric, values in summary["aggregate"].items():
        print(f"fermtl-train: {metric}: {values['mean']:.4f} +- {values['std']:.4f} "
              f"over folds {summary['folds']}")
    print(f"fermtl-train: fold report in {config.output_dir}/folds/folds.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
