"""Figures of the tuple-clusters study: history curves (Figs. 5-6 of Liu et al. 2017) and
the 2-D projection of the embedding."""

import numpy as np
import pandas as pd
import pytest

from fermtl_tf.evaluation.curves import main as curves_main
from fermtl_tf.evaluation.curves import plot_curves, read_histories
from fermtl_tf.methods.tuple_clusters.embedding import (
    pick_identities,
    plot_projection,
    project_2d,
)


def _run(folder, losses):
    folder.mkdir(parents=True)
    pd.DataFrame({"epoch": range(len(losses)), "loss": losses,
                  "val_expression_accuracy": np.linspace(0.2, 0.5, len(losses))}).to_csv(
        folder / "history.csv", index=False)
    return folder


def test_histories_keep_every_run_and_the_mean_is_per_epoch(tmp_path):
    a = _run(tmp_path / "s0", [3.0, 2.0, 1.0])
    b = _run(tmp_path / "s1", [5.0, 2.0, 0.0])
    frame = read_histories([a, b])
    assert len(frame) == 6 and set(frame["run"]) == {str(a), str(b)}
    assert frame.groupby("epoch")["loss"].mean().tolist() == [4.0, 2.0, 0.5]
    out = plot_curves({"x": frame}, "loss", tmp_path / "fig.png")
    assert out.stat().st_size > 1000


def test_curves_errors_name_the_file_or_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="history.csv"):
        read_histories([tmp_path / "nowhere"])
    frame = read_histories([_run(tmp_path / "r", [1.0, 0.5])])
    with pytest.raises(KeyError, match="val_loss"):
        plot_curves({"r": frame}, "val_loss", tmp_path / "x.png")


def test_curves_cli_averages_labelled_runs(tmp_path, capsys):
    a, b = _run(tmp_path / "a", [1.0, 0.5]), _run(tmp_path / "b", [2.0, 1.5])
    out = tmp_path / "cli.png"
    assert curves_main([f"two seeds={a},{b}", str(a), "--out", str(out)]) == 0
    assert out.is_file()
    assert curves_main([str(a), "--column", "nope", "--out", str(out)]) == 2
    assert "nope" in capsys.readouterr().err


def test_projection_is_the_top_two_principal_axes():
    rng = np.random.default_rng(0)
    # variance 9 along axis 0, 4 along axis 2, ~0 elsewhere
    data = rng.normal(size=(200, 5)) * np.array([3.0, 0.01, 2.0, 0.01, 0.01])
    points = project_2d(data)
    centred = data - data.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    for k in range(2):  # principal axes are defined up to sign
        sign = np.sign(points[:, k] @ expected[:, k])
        np.testing.assert_allclose(sign * points[:, k], expected[:, k], atol=1e-8)
    assert points[:, 0].var() > points[:, 1].var() > 100 * data[:, 1].var()


def test_identity_markers_and_plot(tmp_path):
    identity = np.repeat(np.arange(10), 4)
    chosen = pick_identities(identity, count=6, seed=1)
    assert len(chosen) == 6 and set(chosen) <= set(range(10))
    np.testing.assert_array_equal(chosen, pick_identities(identity, count=6, seed=1))
    np.testing.assert_array_equal(pick_identities(np.array([3, 3, 1, -1])), [1, 3])
    points = np.random.default_rng(0).normal(size=(40, 2))
    expression = np.tile(np.arange(4), 10)
    out = plot_projection(points, expression, identity, ["a", "b", "c", "d"],
                          tmp_path / "p.png", identities=chosen)
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="at most"):
        plot_projection(points, expression, identity, ["a"], tmp_path / "q.png",
                        identities=np.arange(9))
