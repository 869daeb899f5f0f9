"""The papers' reported numbers (``evaluate/references/*.yaml``): loading and checking.

Each file transcribes every results table of one paper, row by row, as printed; the
format is described in ``evaluate/references/README.md``. :func:`load_references`
reads a folder of them and checks each against that format, so that a typo in a
metric name, a column key or a config path is an error naming the file and the key,
never a silently empty cell in the reproduction report
(:mod:`fermtl_tf.evaluation.reproduction`).
"""

import math
import os
from pathlib import Path

import yaml

from fermtl_tf.evaluation.benchmarks import BENCHMARKS

UNITS = ("percent", "fraction")
#: A row says how it is reproduced with exactly one of these keys.
ROW_STATUSES = ("config", "not_reproducible", "pending")

_TOP_KEYS = {"paper": str, "title": str, "citation": str, "tables": list}
_TABLE_KEYS = {"table": str, "part": str, "caption": str, "units": str, "protocol": str,
               "notes": list, "columns": list, "rows": list}
_TABLE_REQUIRED = ("table", "caption", "units", "protocol", "columns", "rows")
_COLUMN_KEYS = {"key": str, "header": str, "benchmark": str, "metric": str, "split": str,
                "combine_splits": list, "median_filtered": bool, "true_class": str,
                "predicted_class": str}
#: Metrics that are means over samples, so results on several splits pool exactly.
POOLABLE_METRICS = ("accuracy", "nme_inter_pupil", "nme_inter_ocular")
_COLUMN_REQUIRED = ("key", "header", "benchmark", "metric")
_ROW_KEYS = {"method": str, "group": str, "labels": dict, "true_class": str, "values": dict,
             "bold": list, "config": (str, list), "synthface_config": (str, list),
             "not_reproducible": str, "pending": str}
_ROW_REQUIRED = ("method", "values")


class PrintedFloat(float):
    """A float that keeps the text it was written as ('26.90' stays '26.90' in the report)."""

    def __new__(cls, value, text):
        number = super().__new__(cls, value)
        number.text = text
        return number


class _Loader(yaml.SafeLoader):
    """SafeLoader whose floats are :class:`PrintedFloat`."""


def _construct_float(loader, node):
    return PrintedFloat(loader.construct_yaml_float(node), loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def printed(value):
    """A reference value as the paper prints it: its YAML text, or '-' for null."""
    if value is None:
        return "-"
    return getattr(value, "text", str(value))


class ReferenceError(ValueError):
    """A reference file that breaks the format; the message names the file and the key."""


def _fail(source, key, message):
    raise ReferenceError(f"{source}: key {key!r}: {message}")


def _check_keys(mapping, allowed, required, source, where):
    if not isinstance(mapping, dict):
        _fail(source, where, f"expected a mapping, got {type(mapping).__name__}")
    for key in required:
        if key not in mapping:
            _fail(source, f"{where}.{key}", "missing")
    for key, value in mapping.items():
        if key not in allowed:
            _fail(source, f"{where}.{key}", f"unknown key; allowed: {sorted(allowed)}")
        if not isinstance(value, allowed[key]):
            _fail(source, f"{where}.{key}", f"expected {allowed[key]}, got {type(value).__name__}")


def config_paths(row, field="config"):
    """The row's config paths as a list (a row may name several, e.g. 3 single-task nets)."""
    paths = row.get(field, [])
    return [paths] if isinstance(paths, str) else list(paths)


def _check_column(column, source, where):
    _check_keys(column, _COLUMN_KEYS, _COLUMN_REQUIRED, source, where)
    benchmark = BENCHMARKS.get(column["benchmark"])
    if benchmark is None:
        _fail(source, f"{where}.benchmark",
              f"unknown benchmark {column['benchmark']!r}; known: {sorted(BENCHMARKS)}")
    if not benchmark.reports(column["metric"]):
        _fail(source, f"{where}.metric", f"benchmark {benchmark.name!r} does not report "
              f"{column['metric']!r}; it reports {list(benchmark.metric_names)}")
    if "combine_splits" in column:
        if "split" in column or len(column["combine_splits"]) < 2:
            _fail(source, f"{where}.combine_splits", "needs two or more splits and no 'split'")
        if column["metric"] not in POOLABLE_METRICS:
            _fail(source, f"{where}.combine_splits", f"{column['metric']!r} is not a mean over "
                  f"samples; only {list(POOLABLE_METRICS)} pool across splits")
    if column["metric"] == "confusion_rate" and "predicted_class" not in column:
        _fail(source, f"{where}.predicted_class", "required by metric 'confusion_rate'")


def _check_value(value, source, where):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(source, where, f"expected a number or null, got {value!r}")


def _check_row(row, columns, source, where, root):
    _check_keys(row, _ROW_KEYS, _ROW_REQUIRED, source, where)
    statuses = [key for key in ROW_STATUSES if key in row]
    if len(statuses) != 1:
        _fail(source, where, f"needs exactly one of {list(ROW_STATUSES)}, has {statuses}")
    for key, value in row["values"].items():
        if key not in columns:
            _fail(source, f"{where}.values.{key}", f"not a column key; columns: {list(columns)}")
        _check_value(value, source, f"{where}.values.{key}")
    for key in row.get("bold", []):
        if key != "method" and key not in columns:
            _fail(source, f"{where}.bold", f"{key!r} is neither 'method' nor a column key")
    for key in row["values"]:
        column = columns[key]
        needs_row_class = column["metric"] == "confusion_rate" or (
            column["metric"] == "class_accuracy" and "true_class" not in column)
        if needs_row_class and "true_class" not in row:
            _fail(source, f"{where}.true_class", f"column {key!r} ({column['metric']}) needs "
                  "the row's true class")
    for field in ("config", "synthface_config"):
        for path in config_paths(row, field):
            if not isinstance(path, str) or not path.endswith(".yaml"):
                _fail(source, f"{where}.{field}", f"expected a .yaml path, got {path!r}")
            if root is not None and not os.path.isfile(os.path.join(root, path)):
                _fail(source, f"{where}.{field}", f"config file not found: {path}")


def validate_reference(document, source, root=None):
    """Check one parsed reference file; with ``root`` every config path must exist there."""
    _check_keys(document, _TOP_KEYS, tuple(_TOP_KEYS), source, "<top>")
    for t, table in enumerate(document["tables"]):
        where = f"tables[{t}]"
        _check_keys(table, _TABLE_KEYS, _TABLE_REQUIRED, source, where)
        if table["units"] not in UNITS:
            _fail(source, f"{where}.units", f"must be one of {UNITS}, got {table['units']!r}")
        columns = {}
        for c, column in enumerate(table["columns"]):
            _check_column(column, source, f"{where}.columns[{c}]")
            if column["key"] in columns:
                _fail(source, f"{where}.columns[{c}].key", f"duplicate key {column['key']!r}")
            columns[column["key"]] = column
        for r, row in enumerate(table["rows"]):
            _check_row(row, columns, source, f"{where}.rows[{r}]", root)
    return document


def load_reference(path, root=None):
    """Read and check one reference YAML file (see :func:`validate_reference`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise ReferenceError(f"{path}: malformed YAML: {error}") from None
    return validate_reference(document, str(path), root)


def load_references(folder, root=None):
    """Every ``*.yaml`` reference file of ``folder``, checked, as {file stem: document}."""
    paths = sorted(Path(folder).glob("*.yaml"))
    if not paths:
        raise ReferenceError(f"no reference *.yaml files in {folder}")
    return {path.stem: load_reference(path, root) for path in paths}
