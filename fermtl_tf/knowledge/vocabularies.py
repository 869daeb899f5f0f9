"""Label vocabularies of the five papers and the action-unit naming convention.

A vocabulary is an ordered tuple of class names; the index of a name is the integer
written to the ``expression`` feature. Datasets with another native order (RAF-DB
numbers surprise first, CK+ numbers neutral first) are remapped by their importer,
so a prepared dataset always uses one of these tuples, named in its manifest.
"""

#: 6 basic emotions + neutral: the 7 classes of FaceBehaviorNet, FERSNet and (N+M)-tuple.
BASIC7 = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise")
#: BASIC7 with contempt (CK+, AffectNet).
BASIC8 = BASIC7 + ("contempt",)
#: The 13 emotions and mental states of LSEMSW (Hu et al. 2018, Table 2).
LSEMSW13 = (
    "happy", "sad", "scared", "angry", "hesitant", "indifferent", "surprised",
    "anxious", "arrogant", "thinking", "helpless", "suspicious", "questioning",
)
#: The 14 RAF-CE compound emotions, in the order of Li et al. (2023) Table 1.
RAFCE14 = (
    "happily_surprised", "happily_disgusted", "sadly_fearful", "sadly_angry",
    "sadly_surprised", "sadly_disgusted", "fearfully_angry", "fearfully_surprised",
    "fearfully_disgusted", "angrily_surprised", "angrily_disgusted",
    "disgustedly_surprised", "happily_fearful", "happily_sad",
)

VOCABULARIES = {"basic7": BASIC7, "basic8": BASIC8, "lsemsw13": LSEMSW13, "rafce14": RAFCE14}


def vocabulary(name):
    """Return the class tuple registered under ``name``, with a clear error if unknown."""
    try:
        return VOCABULARIES[name]
    except KeyError:
        raise KeyError(f"unknown expression vocabulary {name!r}; known: {sorted(VOCABULARIES)}") from None


def au_name(number, side=""):
    """Canonical AU label: ``au_name(12)`` -> ``"AU12"``, ``au_name(12, "L")`` -> ``"AU12L"``.

    ``L``/``R`` follow FACS: the *subject's* left and right, so on a frontal image
    ``AU12L`` is on the image's right half.
    """
    if side not in ("", "L", "R"):
        raise ValueError(f"AU side must be '', 'L' or 'R', got {side!r}")
    return f"AU{int(number)}{side}"


def au_mirror_permutation(au_names):
    """Index map that swaps every ``AU<n>L`` with its ``AU<n>R`` after a horizontal flip.

    ``flipped[i] = original[perm[i]]``; AUs without a side, or whose partner is not
    in the list, map to themselves.
    """
    index = {name: i for i, name in enumerate(au_names)}
    perm = list(range(len(au_names)))
    for name, i in index.items():
        if name.endswith("L") and name[:-1] + "R" in index:
            j = index[name[:-1] + "R"]
            perm[i], perm[j] = j, i
    return perm
