"""The ``oulu_casia`` source: Oulu-CASIA NIR&VIS facial expressions (Zhao et al. 2011).

Protocol by default (FERSNet, Zhao et al., Sec. IV-B; Hu et al. 2018, Sec. 4.1): the
visible-light (VL) camera under strong lighting, 80 subjects x 6 expressions, the last
three frames of each sequence (1,440 images), 6 classes (vocabulary ``basic6``, no
neutral), 10 identity-independent folds. The label is the expression folder; every kept
frame of a sequence carries it. ``--classes basic7`` writes the same labels in the
7-class vocabulary with neutral (index 0, then unused).
"""

import os
import re

from fermtl_tf.data.sources import _lab_common as common
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC6, vocabulary

#: Oulu-CASIA expression folders -> package class names.
OULU_FOLDERS = {"anger": "anger", "disgust": "disgust", "fear": "fear",
                "happiness": "happiness", "sadness": "sadness", "surprise": "surprise"}


class OuluCasiaSource(Source):
    name = "oulu_casia"
    description = "Oulu-CASIA NIR&VIS: VL strong light, last 3 frames, 10 subject folds"
    layout = """\
Expected layout under --root (the unpacked Oulu-CASIA NIR&VIS archive):
  OriginalImg/VL/Strong/P001/Anger/000.jpeg 001.jpeg ...
  OriginalImg/{VL,NI}/{Strong,Weak,Dark}/P001..P080/
        {Anger,Disgust,Fear,Happiness,Sadness,Surprise}/<frame>.jpeg
With --cropped the pre-cropped faces are read instead:
  VL_Acropped/Strong/P001/Anger/000.jpeg   (NI_Acropped/... for --spectrum NI)
--root may also be the OriginalImg folder itself. Folder names are matched ignoring
case; frames may be .jpeg, .jpg or .png and are ordered by their number.
Default protocol (FERSNet, Hu et al.): VL, Strong, last 3 frames, 6 classes (basic6
vocabulary, no neutral), 10 identity-independent folds."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder holding OriginalImg/")
        parser.add_argument("--spectrum", default="VL", choices=("VL", "NI"),
                            help="VL visible light (default) or NI near infrared")
        parser.add_argument("--lighting", default="Strong", choices=("Strong", "Weak", "Dark"),
                            help="illumination condition (default Strong)")
        parser.add_argument("--cropped", action="store_true",
                            help="read <spectrum>_Acropped/ instead of OriginalImg/")
        common.add_protocol_arguments(parser, "last:3", 10, "FERSNet",
                                      classes=("basic6", ("basic6", "basic7")))

    def _base(self, root, args):
        if args.cropped:
            top = common.child(root, f"{args.spectrum}_Acropped")
        else:
            top = common.child(root, "OriginalImg") or (
                root if common.child(root, args.spectrum) else None)
            top = top and common.child(top, args.spectrum)
        base = top and common.child(top, args.lighting)
        if base is None or not os.path.isdir(base):
            wanted = (f"{args.spectrum}_Acropped/{args.lighting}" if args.cropped
                      else f"OriginalImg/{args.spectrum}/{args.lighting}")
            raise PrepError(f"oulu_casia: no {wanted}/ folder under {root}")
        return base

    def load(self, args):
        root = common.require_folder(os.path.abspath(args.root), "oulu_casia --root")
        base = self._base(root, args)
        inputs, paths, identities = [], [], {}
        for subject in common.sub_folders(base):
            match = re.fullmatch(r"[Pp](\d+)", subject)
            if match is None:
                continue
            identities[subject] = int(match.group(1))
            for folder in common.sub_folders(os.path.join(base, subject)):
                expression = OULU_FOLDERS.get(folder.lower())
                if expression is None:
                    continue
                sequence = os.path.join(base, subject, folder)
                for position, name in enumerate(common.image_files(sequence)):
                    number = common.trailing_number(name)
                    paths.append(os.path.join(sequence, name))
                    inputs.append(FaceInput(
                        image_path=paths[-1], image_id=f"{subject}/{folder}/{name}",
                        where=f"{os.path.relpath(sequence, root)}/{name}",
                        identity=identities[subject], sequence_id=f"{subject}_{folder}",
                        frame_index=position if number is None else number,
                        expression=BASIC6.index(expression)))
        if not inputs:
            raise PrepError(f"oulu_casia: no P<nnn>/<Expression>/ frames under {base}")
        kept, dropped, other_classes = common.apply_protocol(
            inputs, args.frames, args.folds or 10, BASIC6, args.classes)
        options = {k: getattr(args, k) for k in ("spectrum", "lighting", "cropped", "frames",
                                                 "folds", "classes")}
        return ImportedDataset(
            source=self.name, inputs=kept, vocabulary_name=args.classes,
            vocabulary=vocabulary(args.classes),
            identities=identities, domains=[self.name],
            fingerprint={"listing": common.listing_fingerprint(root, paths, options)},
            info={"root": root, "images": base, "protocol": options, "not_selected": dropped,
                  "other_classes": other_classes},
        )


SOURCE = OuluCasiaSource()
