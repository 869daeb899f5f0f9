"""Table V of Zhao et al. (FERSNet §IV-C): accuracy of an independently trained expression
classifier on faces that a FERSNet synthesised for the test identities.

    python train/fersnet_table5.py --classifier runs/fersnet/ckplus_wo_mtl/fold_0/export \
        --generator runs/fersnet/ckplus/fold_0/export --data prepared/ckplus \
        --benchmark ck+ --split unassigned --folds 0

Both are exported models (``fermtl-train ... && fermtl-export`` or ``ExperimentResult.export``):
the classifier trained on the real training faces only (e.g. a ``*_wo_mtl.yaml`` run, the
FER branch alone), the generator a FERSNet of the same fold. Every selected face is
synthesised with every expression; the accuracy is w.r.t. the target expressions. For the
10-fold protocols run it once per fold (``--folds k`` with that fold's two models).
Prints the result JSON and writes ``synthetic_accuracy.json`` and a ``results.json``
(metric ``synthetic_accuracy`` on ``--benchmark``) under ``--out``, by default
``eval/table_v`` in the generator's run folder (the folder above its export), so that
``fermtl-report`` files the folds under the generator's config and averages them into
Table V's row.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def default_out(generator):
    """``<run>/eval/table_v`` for the generator export ``<run>/export``: under its config.yaml."""
    return Path(generator).resolve().parent / "eval" / "table_v"


def main(argv=None):
    from fermtl_tf.evaluation.benchmarks import BENCHMARKS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", required=True, help="export folder of the classifier")
    parser.add_argument("--generator", required=True, help="export folder of the FERSNet")
    parser.add_argument("--data", required=True, help="prepared folder of the test faces")
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS),
                        help="what the data is (as fermtl-eval --benchmark): files the result")
    parser.add_argument("--split", default="test")
    parser.add_argument("--folds", type=int, nargs="*", default=None)
    parser.add_argument("--other-expressions-only", action="store_true",
                        help="synthesise only the expressions other than each face's own")
    parser.add_argument("--out", default=None,
                        help="folder for the results (default: <generator run>/eval/table_v)")
    args = parser.parse_args(argv)
    from fermtl_tf.evaluation.synthetic_accuracy import evaluate_synthetic_accuracy

    results = evaluate_synthetic_accuracy(
        args.classifier, args.generator, args.data, split=args.split, folds=args.folds,
        include_source=not args.other_expressions_only, benchmark=args.benchmark,
        out_dir=args.out or default_out(args.generator))
    print(json.dumps({key: results[key] for key in
                      ("accuracy", "num_samples", "num_source_images", "per_target_accuracy")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
