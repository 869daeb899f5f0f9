"""The installed distribution: console scripts and top-level packages."""

from importlib import metadata

import pytest


@pytest.fixture(scope="module")
def distribution():
    return metadata.distribution("fermtl-tf")


def test_only_fermtl_tf_is_a_top_level_package(distribution):
    # `train` and `evaluate` are folders of scripts; `evaluate` is also taken on PyPI.
    top_level = (distribution.read_text("top_level.txt") or "").split()
    assert top_level == ["fermtl_tf"]


def test_console_scripts_point_at_the_cli_mains(distribution):
    scripts = {ep.name: ep.value for ep in distribution.entry_points
               if ep.group == "console_scripts"}
    assert scripts == {
        "fermtl-prep": "fermtl_tf.cli.prep:main",
        "fermtl-train": "fermtl_tf.cli.train:main",
        "fermtl-eval": "fermtl_tf.cli.evaluate:main",
        "fermtl-demo": "fermtl_tf.cli.demo:main",
        "fermtl-report": "fermtl_tf.cli.report:main",
    }


def test_no_tensorflow_addons_requirement(distribution):
    requirements = " ".join(distribution.requires or [])
    assert "tensorflow-addons" not in requirements
    assert "tensorflow" in requirements
