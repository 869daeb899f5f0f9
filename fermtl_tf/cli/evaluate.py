"""``fermtl-eval``: evaluate an exported SavedModel on a prepared benchmark split.

Example::

    fermtl-eval --model runs/synthface/export --data data/synthface --out runs/synthface/eval

Prints the Markdown results table; with ``--out`` also writes results.json, results.csv,
results.md and confusion_matrix.png. A missing folder or file is reported in one line
naming the path, with exit status 2.
"""

import argparse
import sys

from fermtl_tf.evaluation.benchmarks import BENCHMARKS
from fermtl_tf.evaluation.report import format_markdown
from fermtl_tf.evaluation.runner import EvaluationInputError, evaluate_saved_model


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fermtl-eval",
        description="Evaluate an exported fermtl-tf SavedModel on a prepared dataset split.",
    )
    parser.add_argument("--model", required=True, help="SavedModel folder with fermtl_export.json")
    parser.add_argument("--data", required=True, help="prepared dataset folder with manifest.json")
    parser.add_argument("--benchmark", default="synthface", choices=sorted(BENCHMARKS),
                        help="which metrics to report (default: synthface)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--out", default=None, help="folder for the report files")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--median-window", type=int, default=None,
                        help="median-filter predictions over this odd number of frames within "
                             "each sequence before scoring (Kollias et al. §4.3)")
    return parser


def main(argv=None):
    """Run the command; returns the exit status (0 success, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.median_window is not None and (args.median_window < 1 or args.median_window % 2 == 0):
        parser.error(f"--median-window must be a positive odd number, got {args.median_window}")
    try:
        results = evaluate_saved_model(
            args.model, args.data, benchmark=args.benchmark, split=args.split,
            out_dir=args.out, batch_size=args.batch_size, median_window=args.median_window,
        )
    except EvaluationInputError as error:
        print(f"fermtl-eval: error: {error}", file=sys.stderr)
        return 2
    print(format_markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
