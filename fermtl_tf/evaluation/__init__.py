"""Evaluation: the benchmark registry, the SavedModel runner, sequence voting, reports."""

from fermtl_tf.evaluation.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from fermtl_tf.evaluation.report import (
    format_folds_markdown,
    format_markdown,
    write_folds_report,
    write_report,
)
from fermtl_tf.evaluation.runner import (
    EvaluationInputError,
    evaluate_fold_models,
    evaluate_folds,
    evaluate_saved_model,
)
from fermtl_tf.evaluation.sequences import SEQUENCE_VOTES, vote_by_sequence

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "EvaluationInputError",
    "SEQUENCE_VOTES",
    "evaluate_fold_models",
    "evaluate_folds",
    "evaluate_saved_model",
    "format_folds_markdown",
    "format_markdown",
    "get_benchmark",
    "vote_by_sequence",
    "write_folds_report",
    "write_report",
]
