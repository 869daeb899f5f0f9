"""Every config shipped under train/configs/ validates and names the command that runs it."""

from pathlib import Path

import pytest

from fermtl_tf.training.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "train" / "configs").rglob("*.yaml"))


def test_configs_are_shipped():
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_validates(path):
    load_config(path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_starts_with_its_command(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# fermtl-train ") and path.name in first_line
