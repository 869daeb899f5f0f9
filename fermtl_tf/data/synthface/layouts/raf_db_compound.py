"""Write a SynthFace dataset in RAF-DB compound's native layout (11 classes, 1-based).

Same files as :mod:`.raf_db` with four-digit names (``train_0001.jpg``). ``plant_bad``
writes one list line with label 12, outside 1..11.
"""

import os

from fermtl_tf.data.synthface.layouts.raf_db import write_raf_style
from fermtl_tf.knowledge.vocabularies import RAFDB_COMPOUND11


def write_raf_db_compound(root, num_subjects=5, seed=0, num_train=11, num_test=5,
                          plant_bad=False):
    """Returns the ground truth per image; the planted line is ``train_9999.jpg 12``."""
    del num_subjects
    truth = write_raf_style(root, RAFDB_COMPOUND11, num_train, num_test, seed, 4, "rafce14")
    if plant_bad:
        with open(os.path.join(root, "EmoLabel", "list_patition_label.txt"), "a") as handle:
            handle.write("train_9999.jpg 12\n")
    return truth
