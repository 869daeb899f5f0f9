"""Evaluation: the benchmark registry, the SavedModel runner and the report writers."""

from fermtl_tf.evaluation.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from fermtl_tf.evaluation.report import format_markdown, write_report
from fermtl_tf.evaluation.runner import (
    EvaluationInputError,
    evaluate_folds,
    evaluate_saved_model,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "EvaluationInputError",
    "evaluate_folds",
    "evaluate_saved_model",
    "format_markdown",
    "get_benchmark",
    "write_report",
]
