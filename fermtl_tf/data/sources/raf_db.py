"""The ``raf_db`` source: RAF-DB basic emotions (Li, Deng & Du, CVPR 2017).

Native labels are 1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger,
7 neutral; they are remapped to :data:`~fermtl_tf.knowledge.vocabularies.BASIC7`. The
official split (12,271 train / 3,068 test) is the file-name prefix. FaceBehaviorNet
(Kollias et al., Sec. 4.1-4.2) trains on the 7 basic classes and reports the mean
diagonal of the confusion matrix.
"""

from fermtl_tf.data.sources._raf_common import LIST_FILES, add_image_arguments, load_raf_list
from fermtl_tf.data.sources.base import Source
from fermtl_tf.knowledge.vocabularies import BASIC7

#: Native RAF-DB basic order (label k is NATIVE_ORDER[k - 1]).
NATIVE_ORDER = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


class RafDbSource(Source):
    name = "raf_db"
    description = "RAF-DB basic: 7 emotions, official train/test split (list_patition_label)"
    layout = """\
Expected layout under --root (the RAF-DB "basic" folder):
  EmoLabel/list_patition_label.txt     lines "train_00001.jpg 5" (1 surprise, 2 fear,
                                       3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral)
  Image/aligned/train_00001_aligned.jpg   --images aligned (default; used whole)
  Image/original/train_00001.jpg          --images original
  Annotation/boundingbox/train_00001_boundingbox.txt   "x0 y0 x1 y1" (original images;
                                       without it MTCNN finds the face)
Also accepted: list_partition_label.txt, the list file or the aligned/ original/
folders directly under --root, aligned images named like the list (train_00001.jpg).
Split: train_/test_ prefix. Labels are remapped to basic7."""

    def add_arguments(self, parser):
        add_image_arguments(parser)

    def load(self, args):
        to_vocab = [BASIC7.index(name) for name in NATIVE_ORDER]
        return load_raf_list(args, self.name, LIST_FILES, "basic7", BASIC7, to_vocab)


SOURCE = RafDbSource()
