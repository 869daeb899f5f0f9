"""Every config shipped under train/configs/ validates and names the command that runs it."""

from pathlib import Path

import pytest

from fermtl_tf.experiments.config import load_config

ROOT = Path(__file__).resolve().parents[1] / "train" / "configs"
#: Runnable configs; files named ``_*.yaml`` are the bases the rows of a table share.
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if not p.name.startswith("_"))
BASES = sorted(ROOT.rglob("_*.yaml"))


def test_configs_are_shipped():
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_validates(path):
    load_config(path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_starts_with_its_command(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# fermtl-train ") and path.name in first_line


@pytest.mark.parametrize("path", BASES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_base_is_used(path):
    users = [c for c in (*CONFIGS, *BASES) if f"base: {path.name}" in c.read_text()]
    assert users, f"{path} is the base of no config"
