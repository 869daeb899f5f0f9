"""The ``raf_db_compound`` source: the 11 compound emotions of RAF-DB (Li et al. 2017).

Vocabulary: :data:`~fermtl_tf.knowledge.vocabularies.RAFDB_COMPOUND11` (defined in
``knowledge/`` so that models need not import a data source), in the order of the
native labels 1-11 given by the README of the RAF-DB compound set (1 happily surprised
... 11 disgustedly surprised), so no remapping is needed. The names are spelled as in
:data:`~fermtl_tf.knowledge.vocabularies.RAFCE14`, of which these are 11 of the 14
(RAF-CE adds fearfully disgusted, happily fearful and happily sad).
"""

from fermtl_tf.data.sources._raf_common import LIST_FILES, add_image_arguments, load_raf_list
from fermtl_tf.data.sources.base import Source
from fermtl_tf.knowledge.vocabularies import RAFDB_COMPOUND11


class RafDbCompoundSource(Source):
    name = "raf_db_compound"
    description = "RAF-DB compound: 11 compound emotions, official train/test split"
    layout = """\
Expected layout under --root (the RAF-DB "compound" folder; same style as basic):
  EmoLabel/list_patition_label.txt     lines "train_0001.jpg 5" with 1 happily surprised,
      2 happily disgusted, 3 sadly fearful, 4 sadly angry, 5 sadly surprised,
      6 sadly disgusted, 7 fearfully angry, 8 fearfully surprised, 9 angrily surprised,
      10 angrily disgusted, 11 disgustedly surprised
  Image/aligned/train_0001_aligned.jpg    --images aligned (default; used whole)
  Image/original/train_0001.jpg           --images original
  Annotation/boundingbox/train_0001_boundingbox.txt   "x0 y0 x1 y1" (optional)
Also accepted: list_partition_label.txt, files directly under --root (as for raf_db).
Split: train_/test_ prefix. Vocabulary rafdb_compound11 (native order)."""

    def add_arguments(self, parser):
        add_image_arguments(parser)

    def load(self, args):
        return load_raf_list(args, self.name, LIST_FILES, "rafdb_compound11",
                             RAFDB_COMPOUND11, list(range(len(RAFDB_COMPOUND11))))


SOURCE = RafDbCompoundSource()
