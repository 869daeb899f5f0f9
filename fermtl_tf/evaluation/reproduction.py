"""The reproduction report: the papers' numbers beside ours, cell by cell.

Inputs are the reference files (:mod:`fermtl_tf.evaluation.references`) and the
``results.json`` files ``fermtl-eval --out`` writes under a runs folder. A result
belongs to the training config whose ``config.yaml`` (written by ``fermtl-train`` into
its output folder) is found in the result's folder or a folder above it; the config's
``name`` key ties it to every reference row naming that config. All results of one
config on one benchmark, split and metric are averaged (the folds of a k-fold protocol,
or repeated runs) and counted.

Units: our metrics are fractions except NME (percent, ``benchmarks.metric_unit``); each
value is converted explicitly into the units the table prints before the difference is
taken. "Within 1 point" means |ours - paper| <= 1 percentage point (0.01 in a table
printed as fractions). Results on SynthFace (``synthetic`` in results.json) go to their
own column and never into "ours"; only their test split counts, unfiltered.

pandas does the joins, the fold averages and the summaries; the Markdown is rendered here
(pandas' ``to_markdown`` needs ``tabulate``, which is not a dependency).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fermtl_tf.config_files import read_raw_config
from fermtl_tf.errors import ConfigError
from fermtl_tf.evaluation.benchmarks import CONFUSION_METRICS, TASK_METRICS, metric_unit
from fermtl_tf.evaluation.references import config_paths, printed
from fermtl_tf.evaluation.report import RESULTS_JSON, to_builtin

DEFAULT_SPLIT = "test"
RUN_CONFIG = "config.yaml"
#: Columns identifying one metric value of one evaluation, shared by runs and references.
MATCH_KEYS = ["benchmark", "split", "median_filtered", "metric", "true_class", "predicted_class"]
#: Columns of :func:`run_records`: one metric value of one results.json.
RECORD_COLUMNS = ["run", "config_name", "synthetic", *MATCH_KEYS, "value", "samples"]
README_START = "<!-- reproduction-status:start -->"
README_END = "<!-- reproduction-status:end -->"


class ReportInputError(ValueError):
    """A runs folder or config that cannot be read; the message names the path."""


# --- reference cells ---------------------------------------------------------------------


def config_name(path):
    """The ``name`` key of a training config file (what ``fermtl-train`` records per run)."""
    try:
        config = read_raw_config(path)  # with its bases: a row may take its name from one
    except ConfigError as error:
        raise ReportInputError(f"cannot read config {path}: {error}") from None
    if not isinstance(config, dict) or not config.get("name"):
        raise ReportInputError(f"{path}: missing key 'name'")
    return str(config["name"])


def _status(row):
    for key in ("config", "not_reproducible", "pending"):
        if key in row:
            reason = "" if key == "config" else row[key]
            return key, reason
    raise ValueError("row without a status")  # excluded by references.validate_reference


def _row_label(row):
    """The printed row label with its group and label cells, e.g. 'LAF (Our soft sharing; ADA: ADA)'."""
    extras = [row["group"]] if row.get("group") else []
    extras += [f"{key}: {value}" for key, value in row.get("labels", {}).items() if value]
    return f"{row['method']} ({'; '.join(extras)})" if extras else row["method"]


def _names(paths, root):
    return tuple(config_name(str(Path(root) / path)) for path in paths)


def _table_label(table):
    return f"Table {table['table']}" + (f" ({table['part']})" if table.get("part") else "")


def _cell_record(paper_id, document, table, row_index, row, column, root):
    """One printed cell with everything needed to match it to runs and to print it."""
    status, reason = _status(row)
    value = row["values"][column["key"]]
    per_class = column["metric"] in CONFUSION_METRICS
    return {
        "paper_id": paper_id, "citation": document["citation"], "title": document["title"],
        "table": _table_label(table), "caption": table["caption"], "units": table["units"],
        "protocol": table["protocol"], "notes": tuple(table.get("notes", [])),
        "row": row_index, "method": _row_label(row), "status": status, "reason": reason,
        "configs": tuple(config_paths(row)),
        "config_names": _names(config_paths(row), root),
        "synthface_names": _names(config_paths(row, "synthface_config"), root),
        "column": column["header"], "benchmark": column["benchmark"],
        "split": column.get("split", DEFAULT_SPLIT),
        "combine_splits": tuple(column.get("combine_splits", ())),
        "median_filtered": column.get("median_filtered", False), "metric": column["metric"],
        "true_class": column.get("true_class", row.get("true_class", "")) if per_class else "",
        "predicted_class": column.get("predicted_class", ""),
        "paper": value, "printed": printed(value), "bold": column["key"] in row.get("bold", []),
    }


def reference_cells(references, root="."):
    """One DataFrame row per printed cell of every reference table (``-`` cells included)."""
    records = [
        _cell_record(paper_id, document, table, row_index, row, column, root)
        for paper_id, document in references.items()
        for table in document["tables"]
        for row_index, row in enumerate(table["rows"])
        for column in table["columns"] if column["key"] in row["values"]
    ]
    cells = pd.DataFrame.from_records(records)
    cells["paper"] = cells["paper"].astype(float)
    return cells


# --- runs --------------------------------------------------------------------------------


def _run_config(results_dir, runs_dir):
    """The nearest ``config.yaml`` at or above ``results_dir``, not above ``runs_dir``."""
    folder = results_dir
    while True:
        if (folder / RUN_CONFIG).is_file():
            return folder / RUN_CONFIG
        if folder == runs_dir or folder.parent == folder:
            return None
        folder = folder.parent


def _confusion_records(results):
    """class_accuracy per true class and confusion_rate per (true, predicted) pair."""
    matrix = results.get("confusion_matrix")
    classes = results.get("expression_classes")
    if matrix is None or not classes:
        return []
    matrix = np.asarray(matrix, dtype=np.float64)
    records = []
    for i, true_class in enumerate(classes):
        total = matrix[i].sum()
        if total == 0:  # no test sample of this class: its recall is undefined
            continue
        records.append(("class_accuracy", true_class, "", matrix[i, i] / total))
        records += [("confusion_rate", true_class, predicted, matrix[i, j] / total)
                    for j, predicted in enumerate(classes)]
    return records


def _samples(results, metric):
    """How many samples ``metric`` was computed on (``samples_per_task`` of its task)."""
    task = next((task for task, names in TASK_METRICS.items() if metric in names), "expression")
    return float(results.get("samples_per_task", {}).get(task, results.get("num_samples", 0)))


def _read_results(path):
    try:
        with open(path, encoding="utf-8") as handle:
            results = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ReportInputError(f"cannot read {path}: {error}") from None
    for key in ("benchmark", "split", "metrics"):
        if key not in results:
            raise ReportInputError(f"{path}: missing key {key!r}")
    return results


def run_records(runs_dir):
    """Every metric value of every results.json under ``runs_dir``, in native units.

    Returns ``(records, unmatched)``: a DataFrame with one row per value (``run``,
    ``config_name``, ``synthetic``, the :data:`MATCH_KEYS` and ``value``) and the list of
    results.json paths that have no config.yaml above them (reported, not dropped).
    """
    runs_dir = Path(runs_dir).resolve()
    if not runs_dir.is_dir():
        raise ReportInputError(f"runs folder not found: {runs_dir}")
    records, unmatched = [], []
    for path in sorted(runs_dir.rglob(RESULTS_JSON)):
        config = _run_config(path.parent, runs_dir)
        if config is None:
            unmatched.append(str(path))
            continue
        results = _read_results(path)
        base = {"run": str(path.parent), "config_name": config_name(str(config)),
                "synthetic": bool(results.get("synthetic", False)),
                "benchmark": results["benchmark"], "split": results["split"],
                "median_filtered": bool(results.get("median_window"))}
        values = [(metric, "", "", value) for metric, value in results["metrics"].items()]
        for metric, true_class, predicted, value in values + _confusion_records(results):
            if value is not None and math.isfinite(value):
                records.append({**base, "metric": metric, "true_class": true_class,
                                "predicted_class": predicted, "value": float(value),
                                "samples": _samples(results, metric)})
    return pd.DataFrame.from_records(records, columns=RECORD_COLUMNS), unmatched


def fold_means(records):
    """Mean, count and mean sample count of one config/benchmark/split/metric (its folds)."""
    keys = ["config_name", "synthetic", *MATCH_KEYS]
    records = records.astype({"synthetic": bool, "median_filtered": bool, "value": float,
                              "samples": float})
    if records.empty:
        return records[keys].assign(value=[], runs=[], samples=[])
    grouped = records.groupby(keys, sort=False)
    return grouped.agg(value=("value", "mean"), runs=("value", "count"),
                       samples=("samples", "mean")).reset_index()


# --- the join ----------------------------------------------------------------------------


def _first_match(cells, means, on, names_column):
    """For each cell, the mean of the first of its configs (in row order) that has one.

    ``on`` are the columns a cell and a fold mean must share besides the config name.
    """
    exploded = cells[[names_column, *on]].explode(names_column).dropna(subset=[names_column])
    exploded["order"] = exploded.groupby(level=0).cumcount()
    exploded = exploded.reset_index(names=["cell"])
    merged = exploded.merge(means, left_on=[names_column, *on],
                            right_on=["config_name", *on], how="inner")
    merged = merged.sort_values(["cell", "order"]).drop_duplicates("cell")
    return merged.set_index("cell")[["value", "runs", "samples"]]


def _combined_match(cells, means):
    """Cells whose column pools several splits (300-W full = common + challenging).

    Each split is matched on its own; the cell's value is their sample-weighted mean, exact
    for a metric that is a mean over samples (NME, accuracy), and only when every split
    was evaluated. ``runs`` is the smallest run count among the splits.
    """
    parts = cells.assign(split=cells["combine_splits"]).explode("split")
    parts = parts.reset_index(names="cell_id").reset_index(drop=True)
    matched = _first_match(parts, means, MATCH_KEYS, "config_names")
    matched = matched.join(parts["cell_id"]).assign(weighted=lambda m: m["value"] * m["samples"])
    pooled = matched.groupby("cell_id").agg(weighted=("weighted", "sum"),
                                            samples=("samples", "sum"),
                                            runs=("runs", "min"), parts=("value", "count"))
    complete = pooled["parts"] == cells["combine_splits"].str.len().reindex(pooled.index)
    pooled = pooled[complete]
    return pd.DataFrame({"value": pooled["weighted"] / pooled["samples"],
                         "runs": pooled["runs"], "samples": pooled["samples"]})


def _to_paper_units(values, metrics, units):
    """Native metric values (fraction, or percent for NME) in the table's printed units."""
    native = metrics.map(metric_unit)
    factor = np.where(native == units, 1.0, np.where(units == "percent", 100.0, 0.01))
    return values * factor


def compare(cells, records):
    """``cells`` with our real-data value, difference, run count and SynthFace value added."""
    cells = cells.copy()
    means = fold_means(records)
    real = means[~means["synthetic"]]
    synthetic = means[means["synthetic"] & (means["split"] == DEFAULT_SPLIT)
                      & ~means["median_filtered"]]
    configured = cells["status"] == "config"
    pooled = cells["combine_splits"].str.len() > 0
    ours = pd.concat([
        _first_match(cells[configured & ~pooled], real, MATCH_KEYS, "config_names"),
        _combined_match(cells[configured & pooled], real),
    ])
    cells["ours"] = _to_paper_units(ours["value"].reindex(cells.index), cells["metric"],
                                    cells["units"])
    cells["runs"] = ours["runs"].reindex(cells.index).fillna(0).astype(int)
    names = cells["config_names"] + cells["synthface_names"]
    synthface = _first_match(cells.assign(all_names=names), synthetic,
                             ["metric", "true_class", "predicted_class"], "all_names")
    cells["synthface"] = _to_paper_units(synthface["value"].reindex(cells.index),
                                         cells["metric"], cells["units"])
    cells["difference"] = cells["ours"] - cells["paper"]
    points = cells["difference"].abs() * np.where(cells["units"] == "percent", 1.0, 100.0)
    cells["within_1_point"] = (points <= 1.0 + 1e-9).where(cells["difference"].notna())
    return cells


# --- summaries ---------------------------------------------------------------------------


def row_summary(cells):
    """One line per reference row: its status, whether it was run and whether it agrees."""
    keys = ["paper_id", "citation", "table", "row"]
    rows = cells.groupby(keys, sort=False).agg(
        status=("status", "first"), run=("ours", lambda v: bool(v.notna().any())),
        compared=("within_1_point", lambda v: int(v.notna().sum())),
        agreeing=("within_1_point", lambda v: int((v == True).sum())),  # noqa: E712
        synthface_run=("synthface", lambda v: bool(v.notna().any())),
    ).reset_index()
    rows["within_1_point"] = rows["run"] & (rows["compared"] > 0) & (
        rows["compared"] == rows["agreeing"])
    return rows


def paper_summary(cells):
    """Per paper: rows, rows with a config, pending, not reproducible, run, within 1 point."""
    rows = row_summary(cells)
    summary = rows.groupby(["paper_id", "citation"], sort=False).agg(
        rows=("row", "size"),
        with_config=("status", lambda s: int((s == "config").sum())),
        pending=("status", lambda s: int((s == "pending").sum())),
        not_reproducible=("status", lambda s: int((s == "not_reproducible").sum())),
        run=("run", "sum"), within_1_point=("within_1_point", "sum"),
        synthface_run=("synthface_run", "sum"),
    ).reset_index()
    numeric = summary.columns[2:]
    summary[numeric] = summary[numeric].astype(int)
    return summary


# --- rendering ---------------------------------------------------------------------------


def markdown_table(frame):
    """A DataFrame as a GitHub Markdown table (cells converted with str, '|' escaped)."""
    def cell(value):
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
             "| " + " | ".join("---" for _ in frame.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _number(value, units):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.2f}" if units == "percent" else f"{value:.3f}"


def _paper_text(cell):
    return f"**{cell.printed}**" if cell.bold and cell.printed != "-" else cell.printed


def _ours_text(cell):
    if cell.status == "not_reproducible":
        return f"not reproducible: {cell.reason}"
    if cell.status == "pending":
        return f"pending: {cell.reason}"
    return _number(cell.ours, cell.units) if not math.isnan(cell.ours) else "not run"


def display_table(cells):
    """The cells of one reference table as the report prints them."""
    return pd.DataFrame({
        "Method": cells["method"], "Column": cells["column"],
        "Paper": [_paper_text(c) for c in cells.itertuples()],
        "Ours": [_ours_text(c) for c in cells.itertuples()],
        "Difference": [_number(c.difference, c.units) for c in cells.itertuples()],
        "Runs": [str(c.runs) if c.runs else "" for c in cells.itertuples()],
        "SynthFace": [_number(c.synthface, c.units) for c in cells.itertuples()],
        "Config": [", ".join(f"`{p}`" for p in c.configs) for c in cells.itertuples()],
    })


SUMMARY_HEADERS = {"citation": "Paper", "rows": "Rows", "with_config": "With config",
                   "pending": "Pending", "not_reproducible": "Not reproducible", "run": "Run",
                   "within_1_point": "Within 1 point", "synthface_run": "SynthFace run"}


def summary_table(summary):
    """The per-paper summary with a total line, headed for people."""
    total = summary.drop(columns=["paper_id", "citation"]).sum().to_dict()
    table = pd.concat([summary, pd.DataFrame([{"citation": "Total", **total}])],
                      ignore_index=True)
    return table[list(SUMMARY_HEADERS)].rename(columns=SUMMARY_HEADERS)


def render_markdown(cells, summary, runs_label, unmatched=()):
    """docs/REPRODUCTION.md: summary, then every table of every paper, cell by cell."""
    lines = [
        "# Reproduction status", "",
        "Generated by `fermtl-report` from `evaluate/references/*.yaml` and the `results.json` "
        f"files under {runs_label}; regenerate it rather than editing it.", "",
        "*Ours* is the mean over every evaluation of the row's config on the table's benchmark "
        "and split (the folds of a cross-validation protocol; *Runs* counts them), converted "
        "to the units the table prints; *Difference* is ours minus paper. A row is *within 1 "
        "point* when every compared cell differs by at most 1 percentage point (0.01 where "
        "the table prints fractions). *SynthFace* holds results of the row's configs (or its "
        "SynthFace configs) on the synthetic benchmark, matched by metric name: never mixed with real-data values, and no evidence about real "
        "faces.", "",
        "## Summary", "", markdown_table(summary_table(summary)), "",
    ]
    if unmatched:
        lines += ["Results without a `config.yaml` above them (not matched to any row):", ""]
        lines += [f"- `{path}`" for path in unmatched] + [""]
    for (paper_id, citation), paper_cells in cells.groupby(["paper_id", "citation"], sort=False):
        lines += [f"## {citation}: {paper_cells['title'].iloc[0]}", "",
                  f"Transcribed in `evaluate/references/{paper_id}.yaml`.", ""]
        for table, table_cells in paper_cells.groupby("table", sort=False):
            first = table_cells.iloc[0]
            lines += [f"### {table}", "", f"*{first['caption']}*", "",
                      f"Units: {first['units']}. Protocol: {first['protocol']}.", ""]
            if first["notes"]:
                lines += ["Notes:", ""] + [f"- {note}" for note in first["notes"]] + [""]
            lines += [markdown_table(display_table(table_cells)), ""]
    return "\n".join(lines)


def readme_section(summary):
    """The README's "Reproduction status" block: one line per paper, between markers."""
    lines = [README_START, "## Reproduction status", "",
             "Generated by `fermtl-report --runs runs --readme README.md` from the papers' "
             "transcribed tables (`evaluate/references/`) and the `fermtl-eval` results under "
             "`runs/`; the full comparison, table by table, is in "
             "[docs/REPRODUCTION.md](docs/REPRODUCTION.md). SynthFace results come from "
             "the studies `train/<paper>_synthface_study.py`; `fermtl-report --synthface "
             "--runs runs --readme README.md` runs them first (seed 0 only unless `--seeds` "
             "says otherwise; finished runs are reused).", ""]
    for item in summary.itertuples():
        lines.append(f"- **{item.citation}**: {item.rows} rows, {item.with_config} with a "
                     f"config, {item.pending} pending, {item.not_reproducible} not "
                     f"reproducible; {item.run} run on real data, {item.within_1_point} within "
                     f"1 point of the paper; {item.synthface_run} with a SynthFace result.")
    return "\n".join(lines + [README_END])


def update_readme(text, section):
    """``text`` with the block between the markers replaced (appended when absent)."""
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        return head + section + rest.split(README_END, 1)[1]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def report_json(cells, summary, unmatched=()):
    """The JSON twin of the Markdown: summary, tables and every cell, NaN as null."""
    table_columns = ["paper_id", "table", "caption", "units", "protocol", "notes"]
    tables = cells[table_columns].drop_duplicates(["paper_id", "table"])
    columns = ["paper_id", "table", "row", "method", "column", "benchmark", "split",
               "median_filtered", "metric", "true_class", "predicted_class", "status",
               "reason", "configs", "paper", "printed", "bold", "ours", "difference",
               "within_1_point", "runs", "synthface"]
    records = cells[columns].astype(object).where(cells[columns].notna(), None)
    return to_builtin({
        "summary": summary.to_dict(orient="records"),
        "tables": tables.to_dict(orient="records"),
        "cells": records.to_dict(orient="records"),
        "unmatched_results": list(unmatched),
    })
