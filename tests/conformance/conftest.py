"""Fixtures of the method conformance harness: one SynthFace folder for every method."""

import pytest

from fermtl_tf.cli.prep import main as prep_main


@pytest.fixture(scope="session")
def synthface_folder(tmp_path_factory):
    """A prepared SynthFace folder with every label (expression, landmarks, AUs, VA,
    identity, attributes): 6 identities x 2 sequences x 4 frames, 32x32 crops from the
    rendered landmarks (no detector), split train 32 / val 8 / test 8."""
    folder = tmp_path_factory.mktemp("conformance") / "synthface"
    code = prep_main(["synthface", "--out", str(folder), "--identities", "6",
                      "--sequences-per-identity", "2", "--frames-per-sequence", "4",
                      "--crop-from", "landmarks", "--size", "32", "--quiet"])
    assert code == 0
    return folder
