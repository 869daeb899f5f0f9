"""Task relatedness (FaceBehaviorNet Table 1, §3.2.1) against the paper, entry by entry."""

import numpy as np
import pytest

from fermtl_tf.knowledge.relatedness import (
    FACEBEHAVIORNET_AUS,
    au_weights,
    infer_conditional,
    prototypical_aus,
    relatedness_matrix,
)

# Table 1 of Kollias et al., typed from the paper: (prototypical, {observational: w}).
TABLE1_COGNITIVE = {
    "happiness": ((12, 25), {6: 0.51}),
    "sadness": ((4, 15), {1: 0.6, 6: 0.5, 11: 0.26, 17: 0.67}),
    "fear": ((1, 4, 20, 25), {2: 0.57, 5: 0.63, 26: 0.33}),
    "anger": ((4, 7, 24), {10: 0.26, 17: 0.52, 23: 0.29}),
    "surprise": ((1, 2, 25, 26), {5: 0.66}),
    "disgust": ((9, 10, 17), {4: 0.31, 24: 0.26}),
}
TABLE1_AFFWILD2 = {
    "happiness": {12: 0.82, 25: 0.7, 6: 0.57, 7: 0.83, 10: 0.63},
    "sadness": {4: 0.53, 15: 0.42, 1: 0.31, 7: 0.13, 17: 0.1},
    "fear": {1: 0.52, 4: 0.4, 25: 0.85, 5: 0.38, 7: 0.57, 10: 0.57},
    "anger": {4: 0.65, 7: 0.45, 25: 0.4, 10: 0.33, 9: 0.15},
    "surprise": {1: 0.38, 2: 0.37, 25: 0.85, 26: 0.3, 5: 0.5, 7: 0.2},
    "disgust": {9: 0.21, 10: 0.85, 17: 0.23, 4: 0.6, 7: 0.75, 25: 0.8},
}
ALL_TABLE_AUS = [f"AU{n}" for n in range(1, 28)]
EMOTIONS = list(TABLE1_COGNITIVE)


def test_prototypical_aus_are_table1_prototypical_column():
    got = prototypical_aus("cognitive")
    for emotion, (prototypical, _) in TABLE1_COGNITIVE.items():
        assert got[emotion] == {f"AU{n}" for n in prototypical}, emotion


def test_cognitive_weights_are_1_for_prototypical_and_w_for_observational():
    got = au_weights("cognitive")
    for emotion, (prototypical, observational) in TABLE1_COGNITIVE.items():
        expected = {f"AU{n}": 1.0 for n in prototypical}
        expected.update({f"AU{n}": w for n, w in observational.items()})
        assert got[emotion] == pytest.approx(expected), emotion


def test_affwild2_weights_are_table1_empirical_column_without_prototypical_aus():
    got = au_weights("affwild2")
    for emotion, aus in TABLE1_AFFWILD2.items():
        assert got[emotion] == pytest.approx({f"AU{n}": w for n, w in aus.items()}), emotion
    assert all(not aus for aus in prototypical_aus("affwild2").values())


def test_weighted_matrix_matches_table1_entry_by_entry():
    matrix = relatedness_matrix(EMOTIONS, ALL_TABLE_AUS, "cognitive", "weighted")
    for row, (prototypical, observational) in enumerate(TABLE1_COGNITIVE.values()):
        for column, number in enumerate(range(1, 28)):
            expected = 1.0 if number in prototypical else observational.get(number, 0.0)
            assert matrix[row, column] == pytest.approx(expected), (row, number)


def test_binary_matrix_is_one_for_every_related_au_eq3():
    matrix = relatedness_matrix(EMOTIONS, ALL_TABLE_AUS, "affwild2", "binary")
    for row, aus in enumerate(TABLE1_AFFWILD2.values()):
        expected = [1.0 if number in aus else 0.0 for number in range(1, 28)]
        np.testing.assert_array_equal(matrix[row], expected)


def test_au2_relates_to_surprise_and_fear_only_as_in_the_eq3_example():
    matrix = relatedness_matrix(au_names=("AU2",))
    related = {emotion for emotion, value in
               zip(("neutral", "anger", "disgust", "fear", "happiness", "sadness",
                    "surprise"), matrix[:, 0], strict=True) if value}
    assert related == {"surprise", "fear"}


def test_neutral_and_unknown_au_names_give_zero_entries():
    matrix = relatedness_matrix(("neutral", "happiness"), ("AU12", "AU43", "AU12L"))
    np.testing.assert_array_equal(matrix, [[0, 0, 0], [1, 0, 0]])


def test_unknown_emotion_is_an_error_naming_it():
    with pytest.raises(KeyError, match="contempt"):
        relatedness_matrix(("happiness", "contempt"))


def test_custom_table_source_is_used_as_given():
    table = {"happily_surprised": {"AU12": 1.0, "AU5": 0.64}}
    matrix = relatedness_matrix(("happily_surprised",), ("AU5", "AU12", "AU1"), table,
                                "weighted")
    np.testing.assert_allclose(matrix, [[0.64, 1.0, 0.0]])


def test_default_aus_are_the_union_of_the_paper_au_datasets():
    # §4.1: EmotioNet, DISFA, GFT, BP4D (FERA 2015), BP4D+ (FERA 2017); footnote 2.
    datasets = [(1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26), (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26),
                (1, 2, 4, 6, 10, 12, 14, 15, 23, 24), (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23),
                (1, 4, 6, 7, 10, 12, 14, 15, 17, 23)]
    union = sorted(set().union(*datasets))
    assert FACEBEHAVIORNET_AUS == tuple(f"AU{n}" for n in union)
    assert len(FACEBEHAVIORNET_AUS) == 17


# --- infer_conditional (§3.2.1, Table 2) -------------------------------------------------


def test_infer_conditional_is_the_fraction_of_a_class_images_with_the_label():
    identity = np.array([0, 0, 0, 1, 1])
    attributes = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [0, 1]])
    got = infer_conditional(identity, attributes)
    np.testing.assert_allclose(got, [[2 / 3, 1 / 3], [0.0, 1.0]])


def test_infer_conditional_counts_only_co_annotated_samples():
    emotion = np.array([2, 2, 2, 0, 1])
    aus = np.array([[1, 1], [1, 0], [1, 0], [1, 1], [1, 1]], "float32")
    mask_a = np.array([1, 1, 1, 1, 0])  # the last sample has no expression
    mask_b = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 1]])
    probabilities, counts = infer_conditional(emotion, aus, mask_a, mask_b, return_counts=True)
    np.testing.assert_array_equal(counts, [[1, 1], [0, 0], [2, 2]])
    np.testing.assert_allclose(probabilities, [[1, 1], [0, 0], [1.0, 0.5]])


def test_infer_conditional_fills_classes_without_samples():
    got = infer_conditional(np.array([0]), np.array([[1.0]]), num_classes_a=3, fill_value=-1.0)
    np.testing.assert_array_equal(got, [[1.0], [-1.0], [-1.0]])


def test_infer_conditional_rejects_negative_annotated_class():
    with pytest.raises(ValueError, match=r"labels_a\[1\]"):
        infer_conditional(np.array([0, -1]), np.array([[1.0], [0.0]]))


def test_infer_conditional_rejects_intensities():
    with pytest.raises(ValueError, match="threshold"):
        infer_conditional(np.array([0, 1]), np.array([[3.0], [0.0]]))
