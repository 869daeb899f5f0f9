"""Expression -> action-unit relatedness tables, used generatively by SynthFace.

Each table maps an expression class to ``{AU name: probability that the AU is active}``.
SynthFace samples every AU of a class independently with that probability, so the
coupling priors the multi-task methods use are the true generative priors of the data.

Sources
-------
* :data:`BASIC_STUDY` -- Kollias et al., "Distribution matching for multi-task learning
  of classification tasks" (FaceBehaviorNet), Table 1, left column (the cognitive-
  psychological study of Du et al. 2014): prototypical AUs (observed by all annotators)
  get probability :data:`PROTOTYPICAL_P` = 0.9, observational AUs their listed weight
  (fraction of annotators). Contempt is not in that table; we add the textbook
  unilateral AU12 + AU14 (package choice, see :data:`CONTEMPT`).
* :data:`BASIC_AFFWILD2` -- the same Table 1, right column: fraction of Aff-Wild2 images
  of the emotion in which the AU was active. Exposed as data for the coupling losses;
  SynthFace generates from :data:`BASIC_STUDY`.
* :data:`COMPOUND_WILD` -- Li et al. 2023 (MML), Table 1, in-the-wild (RAF-CE) rows.
  The markdown copy of that table has its cells merged: a cell is either
  ``"wild% lab%"`` or a single percentage that can belong to either row. Tab positions
  are intact, so the AU column of every cell is certain. Our reading rule for single
  values, in order:

  1. two values: the first is in-the-wild (the starred lab row comes second);
  2. AU11, AU15, AU20, AU24 single values are lab (the paper's Sec. 3.2 says they are
     not observed in the wild); AU16, AU27 single values are wild (never observed in
     the lab); AU7 single values are lab ("rarely activated in our database");
  3. AU12 and AU25 single values are wild (AU12 observed in 10 compound emotions in the
     wild, AU25 in all 14); the AU9 values match the worked example of Sec. 4
     (0.24 HD, 0.29 SA, 0.56 FA, 0.33 AD);
  4. otherwise the value is lab when Du et al. (2014) list the AU as prototypical or
     variant for that compound, wild if not;
  5. happily fearful (11 images) and happily sad (29 images) have no Du et al. row:
     a single value is wild only if it equals k/n rounded for the row's image count n
     (e.g. 27 % = 3/11), otherwise lab.

  Check: fearfully angry sums to 5.54 expected active AUs, the figure the paper states.
  Two readings contradict the text and are kept literally: sadly disgusted has AU17
  "29% 47%" (the text says AU17 is never observed in the wild). No row was unreadable,
  so the fallback (union of the two components' prototypical AUs from
  :data:`BASIC_STUDY`, see :func:`compound_fallback`) is not used by any class; it is
  kept for vocabularies extended with compounds the paper does not list.
* :data:`MENTAL_STATES` -- the 13 LSEMSW classes (Hu et al. 2018). The five emotions
  reuse :data:`BASIC_STUDY`; the eight mental states are a **synthetic table of this
  package** (no paper gives AU statistics for them), with gaze and head-roll cues.

:data:`VALENCE_AROUSAL` places every class on the circumplex (Russell 1980 style
positions; compounds are the mean of their two components; mental states and contempt
are package choices).
"""

from dataclasses import dataclass, field

#: Probability given to a prototypical AU of the cognitive-psychological study.
PROTOTYPICAL_P = 0.9


def _study(prototypical, observational):
    table = {f"AU{au}": PROTOTYPICAL_P for au in prototypical}
    table.update({f"AU{au}": w for au, w in observational.items()})
    return table


#: FaceBehaviorNet Table 1, cognitive-psychological study (Du et al. 2014).
BASIC_STUDY = {
    "neutral": {},
    "happiness": _study((12, 25), {6: 0.51}),
    "sadness": _study((4, 15), {1: 0.6, 6: 0.5, 11: 0.26, 17: 0.67}),
    "fear": _study((1, 4, 20, 25), {2: 0.57, 5: 0.63, 26: 0.33}),
    "anger": _study((4, 7, 24), {10: 0.26, 17: 0.52, 23: 0.29}),
    "surprise": _study((1, 2, 25, 26), {5: 0.66}),
    "disgust": _study((9, 10, 17), {4: 0.31, 24: 0.26}),
}

#: FaceBehaviorNet Table 1, empirical Aff-Wild2 column.
BASIC_AFFWILD2 = {
    "neutral": {},
    "happiness": {"AU12": 0.82, "AU25": 0.7, "AU6": 0.57, "AU7": 0.83, "AU10": 0.63},
    "sadness": {"AU4": 0.53, "AU15": 0.42, "AU1": 0.31, "AU7": 0.13, "AU17": 0.1},
    "fear": {"AU1": 0.52, "AU4": 0.4, "AU25": 0.85, "AU5": 0.38, "AU7": 0.57, "AU10": 0.57},
    "anger": {"AU4": 0.65, "AU7": 0.45, "AU25": 0.4, "AU10": 0.33, "AU9": 0.15},
    "surprise": {"AU1": 0.38, "AU2": 0.37, "AU25": 0.85, "AU26": 0.3, "AU5": 0.5, "AU7": 0.2},
    "disgust": {"AU9": 0.21, "AU10": 0.85, "AU17": 0.23, "AU4": 0.6, "AU7": 0.75, "AU25": 0.8},
}

#: MML (Li et al. 2023) Table 1, in-the-wild RAF-CE rows, read as described above.
COMPOUND_WILD = {
    "happily_surprised": {"AU1": 0.40, "AU2": 0.39, "AU5": 0.32, "AU12": 0.58, "AU25": 0.86,
                          "AU26": 0.43, "AU27": 0.29},
    "happily_disgusted": {"AU4": 0.27, "AU6": 0.21, "AU9": 0.24, "AU10": 0.38, "AU12": 0.52,
                          "AU25": 0.50},
    "sadly_fearful": {"AU1": 0.40, "AU4": 0.58, "AU12": 0.40, "AU16": 0.21, "AU25": 0.78,
                      "AU26": 0.35, "AU27": 0.25},
    "sadly_angry": {"AU4": 0.71, "AU6": 0.20, "AU9": 0.29, "AU10": 0.29, "AU12": 0.22,
                    "AU16": 0.26, "AU25": 0.60, "AU27": 0.26},
    "sadly_surprised": {"AU1": 0.34, "AU4": 0.37, "AU25": 0.71, "AU26": 0.47},
    "sadly_disgusted": {"AU1": 0.20, "AU4": 0.59, "AU10": 0.30, "AU17": 0.29, "AU25": 0.26},
    "fearfully_angry": {"AU2": 0.20, "AU4": 0.47, "AU5": 0.29, "AU6": 0.27, "AU9": 0.56,
                        "AU10": 0.74, "AU12": 0.60, "AU16": 0.63, "AU25": 0.98, "AU27": 0.80},
    "fearfully_surprised": {"AU1": 0.50, "AU2": 0.41, "AU5": 0.64, "AU12": 0.32, "AU16": 0.26,
                            "AU25": 0.84, "AU26": 0.33, "AU27": 0.34},
    "fearfully_disgusted": {"AU1": 0.28, "AU4": 0.56, "AU5": 0.25, "AU10": 0.53, "AU12": 0.22,
                            "AU25": 0.75, "AU26": 0.22},
    "angrily_surprised": {"AU1": 0.23, "AU2": 0.23, "AU4": 0.33, "AU5": 0.38, "AU10": 0.35,
                          "AU12": 0.23, "AU16": 0.38, "AU25": 0.86, "AU26": 0.39, "AU27": 0.36},
    "angrily_disgusted": {"AU4": 0.55, "AU9": 0.33, "AU10": 0.45, "AU25": 0.44},
    "disgustedly_surprised": {"AU1": 0.30, "AU2": 0.24, "AU4": 0.38, "AU5": 0.23, "AU10": 0.35,
                              "AU25": 0.75, "AU26": 0.39},
    "happily_fearful": {"AU6": 0.27, "AU10": 0.64, "AU12": 0.73, "AU25": 0.73, "AU26": 1.00,
                        "AU27": 0.55},
    "happily_sad": {"AU1": 0.28, "AU4": 0.38, "AU6": 0.24, "AU10": 0.24, "AU12": 0.52,
                    "AU25": 0.52},
}

#: The two basic components of each compound (adverb first), for the fallback and VA.
COMPOUND_COMPONENTS = {
    name: tuple(
        {"happily": "happiness", "sadly": "sadness", "fearfully": "fear",
         "angrily": "anger", "disgustedly": "disgust",
         "surprised": "surprise", "disgusted": "disgust", "fearful": "fear",
         "angry": "anger", "sad": "sadness"}[part]
        for part in name.split("_")
    )
    for name in COMPOUND_WILD
}


def compound_fallback(first, second):
    """Union of the prototypical AUs of two basic emotions, each at :data:`PROTOTYPICAL_P`.

    Used for a compound whose in-the-wild row cannot be read (none of the 14 today).
    """
    aus = {}
    for emotion in (first, second):
        aus.update({au: p for au, p in BASIC_STUDY[emotion].items() if p >= PROTOTYPICAL_P})
    return aus


@dataclass(frozen=True)
class ExpressionSpec:
    """How to generate one expression class.

    ``aus``: AU name -> activation probability. ``one_sided``: AUs of ``aus`` that are
    produced on one side of the face only (the same, randomly chosen side for all of
    them in one sample), e.g. the unilateral smile of contempt. ``gaze``: ``None``,
    ``"aside"``, ``"down"`` or ``"up"`` -- a gaze cue drawn with probability
    ``gaze_p``. ``head_roll``: extra head tilt in degrees (sign random).
    ``max_intensity``: cap on the AU intensities of the class (a half-lowered lid).
    """

    aus: dict
    one_sided: tuple = ()
    gaze: str | None = None
    gaze_p: float = 0.0
    head_roll: float = 0.0
    max_intensity: float = 5.0
    source: str = field(default="", compare=False)


#: Contempt: unilateral lip-corner pull and dimpler (Ekman); a package choice.
CONTEMPT = ExpressionSpec(aus={"AU12": 0.9, "AU14": 0.9}, one_sided=("AU12", "AU14"),
                          source="package (Ekman: unilateral AU12/AU14)")

_MENTAL_ONLY = {
    "hesitant": ExpressionSpec(aus={"AU17": 0.9, "AU24": 0.9, "AU4": 0.3},
                               gaze="down", gaze_p=0.9),
    "indifferent": ExpressionSpec(aus={"AU43": 0.9, "AU17": 0.4, "AU14": 0.3},
                                  one_sided=("AU14",), gaze="aside", gaze_p=0.5,
                                  max_intensity=2.5),
    "anxious": ExpressionSpec(aus={"AU1": 0.9, "AU4": 0.9, "AU20": 0.7, "AU24": 0.5},
                              gaze="aside", gaze_p=0.5),
    "arrogant": ExpressionSpec(aus={"AU12": 0.9, "AU14": 0.4, "AU2": 0.3},
                               one_sided=("AU12", "AU14"), head_roll=12.0),
    "thinking": ExpressionSpec(aus={"AU4": 0.9, "AU17": 0.9, "AU24": 0.3},
                               gaze="up", gaze_p=0.9),
    "helpless": ExpressionSpec(aus={"AU1": 0.9, "AU15": 0.9, "AU25": 0.9, "AU2": 0.3}),
    "suspicious": ExpressionSpec(aus={"AU4": 0.9, "AU7": 0.9, "AU14": 0.3},
                                 one_sided=("AU14",), gaze="aside", gaze_p=0.9),
    "questioning": ExpressionSpec(aus={"AU1": 0.9, "AU2": 0.9, "AU25": 0.3},
                                  one_sided=("AU1", "AU2"), head_roll=6.0),
}

#: LSEMSW emotions that are basic emotions of :data:`BASIC_STUDY`.
LSEMSW_BASIC = {"happy": "happiness", "sad": "sadness", "scared": "fear",
                "angry": "anger", "surprised": "surprise"}

#: LSEMSW classes: basic ones from the study table, mental states synthetic (package).
MENTAL_STATES = {
    **{name: ExpressionSpec(aus=BASIC_STUDY[basic], source="FaceBehaviorNet Table 1")
       for name, basic in LSEMSW_BASIC.items()},
    **{name: ExpressionSpec(spec.aus, spec.one_sided, spec.gaze, spec.gaze_p, spec.head_roll,
                            spec.max_intensity, source="package (synthetic)")
       for name, spec in _MENTAL_ONLY.items()},
}


def expression_specs():
    """All expression classes of the four vocabularies -> :class:`ExpressionSpec`."""
    specs = {name: ExpressionSpec(aus=aus, source="FaceBehaviorNet Table 1 (study)")
             for name, aus in BASIC_STUDY.items()}
    specs["contempt"] = CONTEMPT
    specs.update({name: ExpressionSpec(aus=aus, source="MML Table 1 (in the wild)")
                  for name, aus in COMPOUND_WILD.items()})
    specs.update(MENTAL_STATES)
    return specs


_BASIC_VA = {
    "neutral": (0.0, 0.0),
    "happiness": (0.8, 0.45),
    "sadness": (-0.7, -0.4),
    "fear": (-0.6, 0.75),
    "anger": (-0.65, 0.7),
    "surprise": (0.25, 0.85),
    "disgust": (-0.7, 0.35),
    "contempt": (-0.5, 0.25),
}

_MENTAL_VA = {
    "hesitant": (-0.2, -0.15),
    "indifferent": (-0.1, -0.6),
    "anxious": (-0.55, 0.6),
    "arrogant": (-0.15, 0.3),
    "thinking": (0.05, -0.25),
    "helpless": (-0.6, -0.35),
    "suspicious": (-0.4, 0.3),
    "questioning": (0.0, 0.35),
}


def _valence_arousal():
    va = dict(_BASIC_VA)
    for name, (a, b) in COMPOUND_COMPONENTS.items():
        va[name] = tuple((x + y) / 2 for x, y in zip(_BASIC_VA[a], _BASIC_VA[b], strict=True))
    va.update({name: _BASIC_VA[basic] for name, basic in LSEMSW_BASIC.items()})
    va.update(_MENTAL_VA)
    return va


#: Expression class -> (valence, arousal) circumplex position at full intensity.
VALENCE_AROUSAL = _valence_arousal()
