"""The study helpers: statistics against hand-worked values, bookkeeping and resume."""

import json

import numpy as np
import pandas as pd
import pytest

from fermtl_tf.experiments import study


def _table():
    # three seeds, three variants; hand-made so every difference is easy to check
    return pd.DataFrame({"a": [0.50, 0.60, 0.70], "b": [0.55, 0.70, 0.72],
                         "c": [0.40, 0.61, 0.69]}, index=pd.Index([0, 1, 2], name="seed"))


def test_t_interval_matches_hand_computation():
    # differences 0.05, 0.10, 0.02: mean 0.17/3, sd from the definition, t(0.975, 2) = 4.3027
    diff = np.array([0.05, 0.10, 0.02])
    mean = diff.sum() / 3
    sd = np.sqrt(((diff - mean) ** 2).sum() / 2)
    half = 4.302652729911275 * sd / np.sqrt(3)
    got = study.t_interval(diff)
    np.testing.assert_allclose(got, (mean, sd, mean - half, mean + half), rtol=1e-9)


def test_paired_differences_are_per_seed():
    diffs = study.paired_differences(_table(), "a")
    assert list(diffs.index) == ["b", "c"]
    np.testing.assert_allclose(diffs.loc["b", "mean_diff"], (0.05 + 0.10 + 0.02) / 3)
    np.testing.assert_allclose(diffs.loc["c", "mean_diff"], (-0.10 + 0.01 - 0.01) / 3)
    assert diffs.loc["b", "wins"] == 3 and diffs.loc["c", "wins"] == 1
    with pytest.raises(KeyError, match="'z'"):
        study.paired_differences(_table(), "z")


def test_comparison_table_text():
    table = study.comparison_table(_table(), "a", {"a": "A", "b": "B"})
    assert list(table["variant"]) == ["A", "B"]
    assert table.loc[0, "mean ± sd"] == "60.00 ± 10.00"
    assert table.loc[1, "paired diff. vs A [95 % CI]"].startswith("+5.67 [")
    assert table.loc[1, "wins"] == "3/3"


def test_run_study_trains_each_run_once_and_resumes(tmp_path, monkeypatch):
    trained = []

    def fake_train(variant, seed, run_dir, overrides):
        trained.append((variant.key, seed, tuple(overrides)))
        run_dir.mkdir(parents=True)
        timing = {"wall_seconds": 1.0, "cpu_seconds": 2.0}
        (run_dir / study.TIMING_FILE).write_text(json.dumps(timing))
        return run_dir / "export", timing

    def fake_evaluate(export_dir, data_dir, benchmark, split, out_dir):
        seed = int(export_dir.parent.name[len("seed"):])
        out_dir.mkdir(parents=True)
        results = {"metrics": {"accuracy": 0.5 + 0.1 * seed}, "num_samples": 600,
                   "samples_per_task": {"expression": 600}}
        (out_dir / "results.json").write_text(json.dumps(results))

    monkeypatch.setattr(study, "_train_and_export", fake_train)
    monkeypatch.setattr("fermtl_tf.evaluation.runner.evaluate_saved_model", fake_evaluate)
    variants = [study.Variant("x", "X", tmp_path / "x.yaml"),
                study.Variant("y", "Y", tmp_path / "y.yaml")]
    evaluations = [study.Evaluation("expr", tmp_path / "data")]
    frame = study.run_study(variants, [0, 1], evaluations, tmp_path / "runs",
                            overrides=["epochs=2"], log=lambda _: None)
    assert sorted(trained) == [("x", 0, ("epochs=2",)), ("x", 1, ("epochs=2",)),
                               ("y", 0, ("epochs=2",)), ("y", 1, ("epochs=2",))]
    table = study.measure(frame, "expr", "accuracy")
    np.testing.assert_allclose(table.loc[1, "y"], 0.6)
    assert set(frame["samples"]) == {600}
    again = study.run_study(variants, [0, 1], evaluations, tmp_path / "runs", log=lambda _: None)
    assert len(trained) == 4  # nothing retrained
    pd.testing.assert_frame_equal(frame, again)
    done = study.completed(variants, [0, 1, 2], evaluations, tmp_path / "runs")
    assert [(v.key, seed) for v, seed in done] == [("x", 0), ("y", 0), ("x", 1), ("y", 1)]
    other = [study.Evaluation("other", tmp_path / "data")]  # never scored there
    assert study.completed(variants, [0], other, tmp_path / "runs") == []


def test_wins_of_an_error_metric_count_lower_values():
    # as an error metric, b is higher (worse) than a on every seed, c lower on seeds 0 and 2
    diffs = study.paired_differences(_table(), "a", higher_is_better=False)
    assert diffs.loc["b", "wins"] == 0 and diffs.loc["c", "wins"] == 2
    table = study.comparison_table(_table(), "a", {"a": "A", "c": "C"}, higher_is_better=False)
    assert table.loc[1, "wins"] == "2/3"


def _long(values):
    """A run_study-like frame from {(variant, evaluation, metric): [value per seed]}."""
    return pd.DataFrame([{"variant": v, "seed": seed, "evaluation": e, "metric": m,
                          "value": value}
                         for (v, e, m), seeds in values.items()
                         for seed, value in enumerate(seeds)])


def test_relative_errors_average_error_ratios_over_criteria():
    frame = _long({("ref", "ex", "acc"): [0.60], ("ref", "lm", "nme"): [8.0],
                   ("x", "ex", "acc"): [0.70], ("x", "lm", "nme"): [10.0],
                   ("y", "ex", "acc"): [0.50, 0.40], ("y", "lm", "nme"): [6.0, 6.0]})
    scores = study.relative_errors(frame, "ref", [("ex", "acc", True), ("lm", "nme", False)])
    # x: error 0.30 / 0.40 and NME 10 / 8 -> (0.75 + 1.25) / 2; y: mean acc 0.45 over seeds
    np.testing.assert_allclose(scores.loc["x", "score"], 1.0)
    np.testing.assert_allclose(scores.loc["y", "score"], (0.55 / 0.40 + 6.0 / 8.0) / 2)
    np.testing.assert_allclose(scores.loc["ref", "score"], 1.0)
    np.testing.assert_allclose(scores.loc["y", "ex/acc"], 0.45)
    with pytest.raises(KeyError, match="'nobody'"):
        study.relative_errors(frame, "nobody", [("ex", "acc", True)])
