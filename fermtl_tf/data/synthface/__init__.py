"""SynthFace: the embedded procedural face benchmark (DESIGN.md, "SynthFace").

A deterministic generator of faces with exact labels for every task of the five
papers: 68 landmarks, AU intensities/occurrences (with left/right variants),
expressions in four vocabularies, valence/arousal, identities with attributes,
neutral-to-apex sequences, and two rendering domains (``lab``, ``wild``).
See ``docs/synthface.md``. SynthFace is a test bed, not a claim about real faces.
"""

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.identity import SYNTHFACE_ATTRIBUTE_NAMES
from fermtl_tf.data.synthface.labels import SYNTHFACE_AU_NAMES
from fermtl_tf.data.synthface.writer import generate_dataset

__all__ = [
    "SYNTHFACE_ATTRIBUTE_NAMES",
    "SYNTHFACE_AU_NAMES",
    "SynthFaceConfig",
    "SynthFaceGenerator",
    "generate_dataset",
]
