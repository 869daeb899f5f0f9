"""The p(AU | compound emotion) tables of the MML alignment loss (Li et al. 2023).

* ``"wild"`` -- Table 1, in-the-wild RAF-CE rows: frequencies, as read in
  :data:`fermtl_tf.knowledge.expression_au.COMPOUND_WILD` (Eq. 4's "statistical
  frequencies of corresponding AUs").
* ``"lab"`` -- §5.3, "Comparison with lab-controlled statistics": the observed AUs of
  Du et al. (2014) with every p(AU | emo) set to 1. Du et al.'s paper is not among ours;
  the starred (lab) rows of the same Table 1 reproduce it, so :data:`COMPOUND_LAB` is
  read from them: a cell with two values gives its second; a single value is lab where
  the AU is absent from that compound's in-the-wild row. Printed lab frequencies are
  kept for reference; the ``"lab"`` matrix only uses which AUs are present. The
  happily-sad lab row is printed identical to happily surprised (the two happily rows
  have no Du et al. counterpart); we keep it as printed. See docs/FIDELITY.md.

Side-specific AUs (RAF-CE's ``AU12L``/``AU12R``) take the value of their side-less AU
(``merge_sides=True``), since Table 1 has no sides.
"""

import re

import numpy as np

from fermtl_tf.knowledge.expression_au import COMPOUND_WILD

#: Lab (starred) rows of Li et al. 2023 Table 1 = Du et al. (2014) observed AUs.
COMPOUND_LAB = {
    "happily_surprised": {"AU1": 0.95, "AU2": 0.93, "AU5": 0.64, "AU12": 1.0, "AU25": 1.0,
                          "AU26": 0.67},
    "happily_disgusted": {"AU4": 0.32, "AU6": 0.61, "AU9": 0.59, "AU10": 0.98, "AU12": 1.0,
                          "AU25": 1.0},
    "sadly_fearful": {"AU1": 0.86, "AU2": 0.46, "AU4": 0.94, "AU5": 0.24, "AU6": 0.34,
                      "AU15": 0.30, "AU20": 0.70, "AU25": 0.97},
    "sadly_angry": {"AU4": 0.97, "AU6": 0.26, "AU7": 0.48, "AU11": 0.20, "AU15": 0.83,
                    "AU17": 0.50},
    "sadly_surprised": {"AU1": 0.84, "AU2": 0.27, "AU4": 0.90, "AU6": 0.31, "AU25": 0.99,
                        "AU26": 0.90},
    "sadly_disgusted": {"AU1": 0.49, "AU4": 0.97, "AU6": 0.61, "AU9": 0.20, "AU10": 0.85,
                        "AU11": 0.35, "AU15": 0.54, "AU17": 0.47, "AU25": 0.43},
    "fearfully_angry": {"AU4": 0.99, "AU5": 0.40, "AU7": 0.39, "AU10": 0.30, "AU11": 0.33,
                        "AU20": 0.84, "AU25": 0.98},
    "fearfully_surprised": {"AU1": 0.93, "AU2": 0.80, "AU4": 0.47, "AU5": 0.74, "AU10": 0.35,
                            "AU11": 0.22, "AU20": 0.90, "AU25": 0.99, "AU26": 0.51},
    "fearfully_disgusted": {"AU1": 0.77, "AU2": 0.64, "AU4": 0.75, "AU5": 0.50, "AU6": 0.26,
                            "AU9": 0.28, "AU10": 0.92, "AU15": 0.33, "AU20": 0.88,
                            "AU25": 0.98},
    "angrily_surprised": {"AU4": 0.99, "AU5": 0.35, "AU7": 0.50, "AU10": 0.34, "AU25": 1.0,
                          "AU26": 0.94},
    "angrily_disgusted": {"AU4": 0.98, "AU7": 0.60, "AU9": 0.57, "AU10": 0.93, "AU17": 0.79,
                          "AU24": 0.36},
    "disgustedly_surprised": {"AU1": 0.93, "AU2": 0.90, "AU4": 0.45, "AU5": 0.73, "AU9": 0.37,
                              "AU10": 0.91, "AU17": 0.66, "AU24": 0.33},
    "happily_fearful": {"AU1": 0.90, "AU2": 0.85, "AU5": 0.30, "AU12": 1.0, "AU25": 1.0},
    "happily_sad": {"AU1": 0.95, "AU2": 0.93, "AU5": 0.64, "AU12": 1.0, "AU25": 1.0,
                    "AU26": 0.67},
}

#: Statistics accepted by :func:`relatedness_table`.
STATISTICS = ("wild", "lab")

_SIDED = re.compile(r"^(AU\d+)[LR]$")


def relatedness_table(classes, au_names, statistics="wild", merge_sides=True):
    """``[K, J]`` float32 p(AU_j | emo_k) in the model's class and AU order.

    ``"wild"``: the RAF-CE frequencies; ``"lab"``: 1 for each of Du et al.'s observed AUs.
    AUs a table does not mention get 0 (an all-zero column); an unknown class is an error.
    """
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be one of {STATISTICS}, got {statistics!r}")
    table = COMPOUND_WILD if statistics == "wild" else COMPOUND_LAB
    unknown = [name for name in classes if name not in table]
    if unknown:
        raise KeyError(f"class(es) {unknown} have no row in the {statistics} compound AU "
                       f"table (Li et al. 2023, Table 1); known: {sorted(table)}")
    matrix = np.zeros((len(classes), len(au_names)), np.float32)
    for row, name in enumerate(classes):
        for column, au in enumerate(au_names):
            sided = _SIDED.match(au)
            key = sided.group(1) if merge_sides and sided else au
            value = table[name].get(key, 0.0)
            matrix[row, column] = value if statistics == "wild" else float(value > 0)
    return matrix
