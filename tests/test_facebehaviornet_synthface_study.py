"""The FaceBehaviorNet SynthFace study's configs (train/configs/facebehaviornet/synthface_few_*):
the AU set and vocabulary are the ones SynthFace draws from and the coupling losses read, and
each case's two training parts are the two sides of one holdout cut."""

import importlib.util
from pathlib import Path

import pytest

from fermtl_tf.experiments.config import load_config
from fermtl_tf.knowledge.expression_au import BASIC_STUDY
from fermtl_tf.knowledge.vocabularies import BASIC7

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "train" / "configs" / "facebehaviornet").glob("synthface_few_*.yaml"))


def _study_module():
    path = ROOT / "train" / "facebehaviornet_synthface_study.py"
    spec = importlib.util.spec_from_file_location("facebehaviornet_synthface_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_study_variant_has_its_config_with_a_distinct_name():
    study = _study_module()
    paths = [v.config for case in study.CASES for v in study.variants(case)]
    assert sorted(paths) == CONFIGS
    names = [load_config(path).name for path in CONFIGS]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_au_head_predicts_the_aus_synthface_draws_for_the_basic_emotions(path):
    drawn = {au for aus in BASIC_STUDY.values() for au in aus}  # Table 1, cognitive column
    config = load_config(path)
    if "au" in config.tasks:
        assert set(config.tasks["au"].au_names) == drawn
        assert len(config.tasks["au"].au_names) == len(drawn) == 17


def test_data_vocabulary_is_the_coupling_vocabulary():
    study = _study_module()
    assert study.PREP[study.PREP.index("--vocabulary") + 1] == "basic7"
    assert set(BASIC7) == set(BASIC_STUDY)


@pytest.mark.parametrize("case", ["few_au", "few_expr"])
def test_each_case_cuts_one_holdout_into_the_few_labels_and_the_rest(case):
    study = _study_module()
    fraction = study.CASES[case][0]
    few_task = {"few_au": "au", "few_expr": "expression"}[case]
    for path in [p for p in CONFIGS if p.stem.startswith(f"synthface_{case}_")]:
        sources = load_config(path).data.train
        parts = {s.holdout["part"]: s for s in sources}
        assert parts["holdout"].keep_tasks == [few_task]
        assert parts["holdout"].holdout == {**study.HOLDOUT, "fraction": fraction,
                                            "part": "holdout"}
        if len(sources) == 2:  # multi-task: the rest carries the other task only
            other = {"au", "expression"} - {few_task}
            assert parts["rest"].keep_tasks == sorted(other)
            assert parts["rest"].holdout == {**parts["holdout"].holdout, "part": "rest"}
            assert parts["rest"].folder == parts["holdout"].folder
