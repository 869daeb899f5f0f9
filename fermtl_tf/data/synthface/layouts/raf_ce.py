"""Write a SynthFace dataset in the RAF-CE list format defined by fermtl-tf (data_prep/raf_ce.md).

``EmoLabel/RAFCE_partition_label.txt`` lines ``train_0001.jpg 3 1+4+25`` (RAFCE14 class,
then the rendered active bilateral AUs, or ``0`` when none is active), images as in
:mod:`.raf_db`. ``plant_bad`` writes one line with an unreadable AU token.
"""

import os

from fermtl_tf.data.synthface import SYNTHFACE_AU_NAMES
from fermtl_tf.data.synthface.layouts.raf_db import write_raf_style
from fermtl_tf.knowledge.vocabularies import RAFCE14

LIST_NAME = "EmoLabel/RAFCE_partition_label.txt"


def active_aus(labels):
    """Numbers of the bilateral AUs the render shows (occurrence 1), ascending."""
    return sorted(int(name[2:]) for name, on in zip(SYNTHFACE_AU_NAMES, labels["au"],
                                                    strict=True)
                  if on and name[-1].isdigit())


def write_raf_ce(root, num_subjects=5, seed=0, num_train=16, num_test=6, plant_bad=False):
    """Returns the ground truth per image, with ``"aus"`` the AU numbers written."""
    del num_subjects

    def au_field(_name, labels):
        aus = active_aus(labels)
        return ["+".join(str(a) for a in aus) if aus else "0"]

    truth = write_raf_style(root, RAFCE14, num_train, num_test, seed, 4, "rafce14",
                            list_name=LIST_NAME, extra=au_field)
    for entry in truth.values():
        entry["aus"] = active_aus(entry["labels"])
    if plant_bad:
        with open(os.path.join(root, LIST_NAME), "a") as handle:
            handle.write("train_9999.jpg 2 1+AUx\n")
    return truth
