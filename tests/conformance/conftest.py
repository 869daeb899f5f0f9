"""Fixtures of the method conformance harness: SynthFace folders shared by every method."""

import pytest

from fermtl_tf.cli.prep import main as prep_main


@pytest.fixture(scope="session")
def synthface_folders(tmp_path_factory):
    """``folder(vocabulary)``: a prepared SynthFace folder with every label (expression,
    landmarks, AUs, VA, identity, attributes), prepared once per vocabulary: 6 identities
    x 2 sequences x 4 frames, 32x32 crops from the rendered landmarks (no detector), split
    train 32 / val 8 / test 8."""
    root = tmp_path_factory.mktemp("conformance")
    prepared = {}

    def folder(vocabulary="basic7"):
        if vocabulary not in prepared:
            out = root / f"synthface_{vocabulary}"
            code = prep_main(["synthface", "--out", str(out), "--identities", "6",
                              "--sequences-per-identity", "2", "--frames-per-sequence", "4",
                              "--vocabulary", vocabulary, "--crop-from", "landmarks",
                              "--size", "32", "--quiet"])
            assert code == 0
            prepared[vocabulary] = out
        return prepared[vocabulary]

    return folder
