"""Label vocabularies of the five papers and the action-unit naming convention.

A vocabulary is an ordered tuple of class names; the index of a name is the integer
written to the ``expression`` feature. Datasets with another native order (RAF-DB
numbers surprise first, CK+ numbers neutral first) are remapped by their importer,
so a prepared dataset always uses one of these tuples, named in its manifest.

The class *sets* differ between papers and datasets, and the size of a model's
expression head is the size of the vocabulary, so each set the papers train on has its
own tuple: the 6 basic emotions without neutral (Oulu-CASIA, MMI, BU-4DFE in Zhao et al.
Sec. IV-B and Liu et al. 2017 Sec. 4.1), CK+'s 7 (the 6 basic + contempt, no neutral;
Zhao Sec. IV-B, Liu Sec. 4.1 "921 images (without neutral)", Hu et al. 2018 Sec. 4.1),
and the 4 Multi-PIE expressions of Liu et al. Sec. 5. Every subset keeps the relative
order of :data:`BASIC8`, so one class has the same name everywhere.
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

#: The 6 basic emotions without neutral (Oulu-CASIA, MMI, BU-4DFE).
BASIC6 = BASIC7[1:]
#: CK+'s 7 labelled classes: the 6 basic emotions + contempt, without neutral.
CKPLUS7 = BASIC6 + ("contempt",)
#: The 4 Multi-PIE expressions of Liu et al. (2017) Sec. 5 ("disgust, happy, surprise
#: and neutron"); Multi-PIE's smile is happiness, squint and scream are not used.
MULTIPIE4 = ("neutral", "disgust", "happiness", "surprise")
#: The 11 RAF-DB compound classes, in the order of the native labels 1..11 of the RAF-DB
#: compound README (1 happily surprised ... 11 disgustedly surprised); spelled as in
#: :data:`RAFCE14`, of which they are 11 of the 14.
RAFDB_COMPOUND11 = (
    "happily_surprised", "happily_disgusted", "sadly_fearful", "sadly_angry",
    "sadly_surprised", "sadly_disgusted", "fearfully_angry", "fearfully_surprised",
    "angrily_surprised", "angrily_disgusted", "disgustedly_surprised",
)

VOCABULARIES = {
    "basic6": BASIC6, "basic7": BASIC7, "basic8": BASIC8, "ckplus7": CKPLUS7,
    "multipie4": MULTIPIE4, "lsemsw13": LSEMSW13, "rafce14": RAFCE14,
    "rafdb_compound11": RAFDB_COMPOUND11,
}


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
