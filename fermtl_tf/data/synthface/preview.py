"""Contact sheet of SynthFace expressions: rows = classes, columns = domain x intensity.

    python -m fermtl_tf.data.synthface.preview docs/images/synthface_contact_sheet.png
    python -m fermtl_tf.data.synthface.preview sheet.png --vocabulary lsemsw13
"""

import argparse

import cv2
import numpy as np

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.knowledge.vocabularies import vocabulary

#: (domain, intensity scale, column title) of the sheet's columns.
COLUMNS = (("lab", 1.0, "lab strong"), ("lab", 1.0, "lab strong"), ("lab", 1 / 3, "lab subtle"),
           ("wild", 1.0, "wild strong"), ("wild", 1.0, "wild strong"),
           ("wild", 1 / 3, "wild subtle"))


def _text(img, text, org, scale=0.42):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)


def contact_sheet(vocabulary_name="basic8", size=128, seed=0, label_width=150):
    """RGB uint8 sheet; column ``c`` of every row shows identity ``c`` (same person per column)."""
    classes = vocabulary(vocabulary_name)
    gens = {d: SynthFaceGenerator(SynthFaceConfig(seed=seed, domain=d, image_size=size,
                                                  vocabulary=vocabulary_name))
            for d in ("lab", "wild")}
    header = 24
    sheet = np.full((header + size * len(classes), label_width + size * len(COLUMNS), 3), 255,
                    np.uint8)
    for c, (_, _, title) in enumerate(COLUMNS):
        _text(sheet, title, (label_width + c * size + 8, 16))
    for r, name in enumerate(classes):
        y = header + r * size
        _text(sheet, name.replace("_", " "), (6, y + size // 2), 0.45)
        for c, (domain, scale, _) in enumerate(COLUMNS):
            rng = np.random.default_rng([seed, c, 17])  # same scene per column
            image, _ = gens[domain].render(c + 1, name, scale, rng)
            sheet[y:y + size, label_width + c * size:label_width + (c + 1) * size] = image
    return sheet


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="PNG path")
    parser.add_argument("--vocabulary", default="basic8")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sheet = contact_sheet(args.vocabulary, args.size, args.seed)
    cv2.imwrite(args.output, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":
    main()
