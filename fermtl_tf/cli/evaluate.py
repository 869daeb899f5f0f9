"""``fermtl-eval``: evaluate an exported SavedModel on selected records of a prepared dataset.

Examples::

    fermtl-eval --model runs/synthface/export --data data/synthface --out runs/synthface/eval
    # one fold of a cross-validation dataset (CK+, Oulu-CASIA, MMI have no splits):
    fermtl-eval --model runs/ck/fold3/export --data prepared/ckplus --benchmark ck+ --folds 3
    # every fold, each with its own model; mean +- sd over folds (Liu et al.: max vote):
    fermtl-eval --model 'runs/ck/fold{fold}/export' --data prepared/ckplus --benchmark ck+ \\
        --folds all --sequence-vote max --out runs/ck/eval
    # Grad-CAM overlays (Li et al. 2023 Fig. 4) of the first 8 test faces, from the
    # run's training model (model.keras, not the SavedModel):
    fermtl-eval --model runs/mml/model.keras --data prepared/raf_ce --gradcam 8 --out runs/mml

Records are selected as for training: ``--split`` (names, comma-separated; ``all``
for every record; ``unassigned`` for records without a split), ``--folds`` and
``--exclude-folds``. Prints the Markdown results table; with ``--out`` also writes
results.json, results.csv, results.md and confusion_matrix.png (per fold under
``fold_<k>/`` and folds.json, folds.md when ``--model`` holds ``{fold}``). A missing
folder or file, a selection matching nothing, an ``--out`` folder that cannot be written
(checked before evaluating) or a full disk is reported in one line naming the path, with
exit status 2.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from fermtl_tf.cli.gradcam import run_gradcam
from fermtl_tf.data.pipeline import NORMALIZATION_MODES, available_folds
from fermtl_tf.evaluation.benchmarks import BENCHMARKS
from fermtl_tf.evaluation.report import format_folds_markdown, format_markdown
from fermtl_tf.evaluation.runner import (
    EvaluationInputError,
    evaluate_fold_models,
    evaluate_saved_model,
    read_dataset_manifest,
)
from fermtl_tf.evaluation.sequences import SEQUENCE_VOTES

#: Placeholder in ``--model`` replaced by each fold number.
FOLD_PLACEHOLDER = "{fold}"


def _fold_numbers(text):
    """``"3"``, ``"0,2"`` -> [3], [0, 2]; ``"all"`` stays ``"all"``."""
    if text == "all":
        return text
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected fold numbers separated by commas, got {text!r}") from None


def _split_names(text):
    """``"test"``, ``"train,val"`` -> a list of names; ``"all"`` stays ``"all"``."""
    return text if text == "all" else [name for name in text.split(",") if name]


def _selected_split(args):
    """The ``split`` argument of the runner: None selects every record."""
    if args.split is None:  # not given: the test split, or every split of the folds
        return None if (args.folds or args.exclude_folds) else "test"
    return None if args.split == "all" else args.split


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fermtl-eval",
        description="Evaluate an exported fermtl-tf SavedModel on a prepared dataset split.",
    )
    parser.add_argument("--model", required=True,
                        help="SavedModel folder with fermtl_export.json; with {fold} in it, "
                             "each fold of --folds is evaluated with its own model")
    parser.add_argument("--data", default=None,
                        help="prepared dataset folder with manifest.json (required but "
                             "for --gradcam on image files)")
    parser.add_argument("--benchmark", default="synthface", choices=sorted(BENCHMARKS),
                        help="which metrics to report (default: synthface)")
    parser.add_argument("--split", type=_split_names, default=None,
                        help="split name(s), comma-separated; 'unassigned' for records "
                             "without a split, 'all' for every record (default: test, or "
                             "every split when --folds or --exclude-folds is given)")
    parser.add_argument("--folds", type=_fold_numbers, default=None,
                        help="evaluate only these folds (comma-separated), or 'all' "
                             "(needs {fold} in --model)")
    parser.add_argument("--exclude-folds", type=_fold_numbers, default=None,
                        help="leave these folds out (comma-separated)")
    parser.add_argument("--out", default=None, help="folder for the report files")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--median-window", type=int, default=None,
                        help="median-filter predictions over this odd number of frames within "
                             "each sequence before scoring (Kollias et al. §4.3)")
    parser.add_argument("--sequence-vote", choices=SEQUENCE_VOTES, default=None,
                        help="score expressions once per sequence: max (the class of the "
                             "highest frame probability, Liu et al. on CK+) or mean (the "
                             "highest mean score, Liu et al. on MMI)")
    parser.add_argument("--gradcam", nargs="+", default=None, metavar="N|IMAGE",
                        help="instead of scoring: Grad-CAM overlays of the expression "
                             "output (Li et al. 2023 Fig. 4) for the first N records of "
                             "--data's split, or for image files; --model is then the run's "
                             "training model file model.keras (not the SavedModel); writes "
                             "<out>/gradcam/*.png and sheet.png (--out default: the run folder)")
    parser.add_argument("--gradcam-layer", default=None,
                        help="layer whose maps Grad-CAM weighs (default: the last layer "
                             "with a 4-D output, i.e. the last conv block)")
    parser.add_argument("--normalization", choices=NORMALIZATION_MODES, default=None,
                        help="--gradcam input normalisation (default: the run's config.yaml)")
    return parser


def _check_arguments(parser, args):
    if args.gradcam is None and args.data is None:
        parser.error("--data is required (but for --gradcam on image files)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.median_window is not None and (args.median_window < 1 or args.median_window % 2 == 0):
        parser.error(f"--median-window must be a positive odd number, got {args.median_window}")
    per_fold = FOLD_PLACEHOLDER in args.model
    if per_fold and args.folds is None:
        parser.error(f"--model with {FOLD_PLACEHOLDER} needs --folds (numbers or 'all')")
    if per_fold and args.exclude_folds is not None:
        parser.error(f"--exclude-folds does not apply when --model holds {FOLD_PLACEHOLDER}")
    if args.exclude_folds == "all" or (args.folds == "all" and not per_fold):
        parser.error(f"'all' folds needs {FOLD_PLACEHOLDER} in --model")
    if args.split == []:
        parser.error("--split names no split")


def check_writable(folder):
    """Create ``folder`` and write (then remove) a probe file in it, so that an unwritable
    ``--out`` fails before minutes of evaluation, not after; OSError otherwise."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".fermtl-eval-probe-"):
        pass


def _fail(message):
    print(f"fermtl-eval: error: {message}", file=sys.stderr)
    return 2


def _evaluate_per_fold(args):
    """Each fold with its own model (``{fold}`` in ``--model``); the folds' Markdown."""
    folds = args.folds
    if folds == "all":
        folds = available_folds(read_dataset_manifest(args.data))
        if not folds:
            raise EvaluationInputError(f"{args.data}/manifest.json counts no folds")
    model_dirs = {fold: args.model.replace(FOLD_PLACEHOLDER, str(fold)) for fold in folds}
    summary = evaluate_fold_models(
        model_dirs, args.data, benchmark=args.benchmark, split=_selected_split(args),
        out_dir=args.out,
        batch_size=args.batch_size, median_window=args.median_window,
        sequence_vote=args.sequence_vote,
    )
    return format_folds_markdown(summary)


def _gradcam(args):
    """``--gradcam``: write the overlays and print where they are."""
    out = args.out or str(Path(args.model).parent)
    try:
        paths, sheet = run_gradcam(args.model, args.gradcam, out, data_dir=args.data,
                                   split=_selected_split(args), layer=args.gradcam_layer,
                                   normalization=args.normalization)
    except EvaluationInputError as error:
        return _fail(error)
    except OSError as error:
        return _fail(f"{error.strerror or error}: {error.filename or out}")
    print(f"fermtl-eval: {len(paths)} Grad-CAM overlays in {sheet.parent} (sheet: {sheet})")
    return 0


def main(argv=None):
    """Run the command; returns the exit status (0 success, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    if args.out is not None:
        try:
            check_writable(args.out)
        except OSError as error:
            return _fail(f"--out {args.out}: cannot write there: {error.strerror or error}")
    if args.gradcam is not None:
        return _gradcam(args)
    try:
        if FOLD_PLACEHOLDER in args.model:
            print(_evaluate_per_fold(args), end="")
            return 0
        results = evaluate_saved_model(
            args.model, args.data, benchmark=args.benchmark, split=_selected_split(args),
            out_dir=args.out, batch_size=args.batch_size, median_window=args.median_window,
            folds=args.folds, exclude_folds=args.exclude_folds, sequence_vote=args.sequence_vote,
        )
    except EvaluationInputError as error:
        return _fail(error)
    except OSError as error:  # e.g. the disk filled up while writing the report
        return _fail(f"{error.strerror or error}: {error.filename or args.out}")
    print(format_markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
