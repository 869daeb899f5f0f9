"""Write a SynthFace dataset in RAF-DB's native layout (basic or compound).

``EmoLabel/list_patition_label.txt`` with lines ``train_00001.jpg 5``,
``Image/aligned/<stem>_aligned.jpg`` (100x100 renders used as the "aligned" crops) and
``Image/original/<stem>.jpg`` (128x128) with ``Annotation/boundingbox/<stem>_boundingbox.txt``
("x0 y0 x1 y1"). Returns the ground truth the importer must reproduce.
"""

import os

from fermtl_tf.data.synthface.layouts._wild_common import (
    box_xywh,
    generator,
    render,
    truncate,
    write_image,
)

#: RAF-DB basic native order, label k = BASIC_NATIVE[k - 1].
BASIC_NATIVE = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def write_raf_style(root, classes, num_train, num_test, seed, digits, vocabulary,
                    list_name="EmoLabel/list_patition_label.txt", extra=None):
    """Images of both forms plus the list file; ``extra(name, labels)`` adds line fields.

    Returns ``{image name: {"class": name, "label": k, "split": ..., "labels": ...}}``.
    """
    aligned_gen = generator(seed, 100, vocabulary)
    original_gen = generator(seed, 128, vocabulary)
    truth, lines = {}, []
    names = [f"train_{i:0{digits}d}.jpg" for i in range(1, num_train + 1)]
    names += [f"test_{i:0{digits}d}.jpg" for i in range(1, num_test + 1)]
    for index, name in enumerate(names):
        label = index % len(classes) + 1
        expression, identity = classes[label - 1], index % 5
        stem = name[:-4]
        image, labels = render(aligned_gen, identity, expression, index)
        write_image(os.path.join(root, "Image", "aligned", f"{stem}_aligned.jpg"), image)
        image, original = render(original_gen, identity, expression, index)
        write_image(os.path.join(root, "Image", "original", name), image)
        x, y, w, h = box_xywh(original)
        box_path = os.path.join(root, "Annotation", "boundingbox", f"{stem}_boundingbox.txt")
        os.makedirs(os.path.dirname(box_path), exist_ok=True)
        with open(box_path, "w") as handle:
            handle.write(f"{x:.2f} {y:.2f} {x + w:.2f} {y + h:.2f}\n")
        fields = [name, str(label)] + (extra(name, labels) if extra else [])
        lines.append(" ".join(fields))
        truth[name] = {"class": expression, "label": label, "split": name.split("_")[0],
                       "labels": labels}
    path = os.path.join(root, list_name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return truth


def write_raf_db(root, num_subjects=5, seed=0, num_train=14, num_test=7, plant_bad=False):
    """RAF-DB basic. ``plant_bad`` truncates ``train_00002``'s aligned and original image.

    RAF-DB has no identities; ``num_subjects`` is unused beyond the 5 SynthFace faces
    cycled through (kept for the common writer signature).
    """
    del num_subjects
    truth = write_raf_style(root, BASIC_NATIVE, num_train, num_test, seed, 5, "basic7")
    if plant_bad:
        truncate(os.path.join(root, "Image", "aligned", "train_00002_aligned.jpg"))
        truncate(os.path.join(root, "Image", "original", "train_00002.jpg"))
    return truth
