"""Benchmark registry: which metrics each benchmark reports, as in the papers' tables.

Metric names are grouped by task; the runner (``fermtl_tf.evaluation.runner``) knows how
to compute each name from a model's outputs and the dataset's labels:

* ``expression``: ``accuracy``, ``mean_diagonal``, ``macro_f1``, ``uar``
* ``landmarks``: ``nme_inter_pupil``, ``nme_inter_ocular`` (percent)
* ``au``: ``au_f1``, ``au_accuracy``, ``afa``
* ``va``: ``ccc_valence``, ``ccc_arousal``
* ``identity``: ``identity_accuracy``, ``identity_macro_f1`` (Kollias Table 8)
* ``attributes``: ``attribute_accuracy``, ``attribute_f1`` (Kollias Table 8)

Two further metrics are read from the confusion matrix every expression evaluation
writes (:data:`CONFUSION_METRICS`): the accuracy of one class (Li Table 2's per-class
columns) and one cell of the row-normalised matrix (Liu Tables 1, 2 and 4). One more,
``synthetic_accuracy`` (:data:`SYNTHESIS_METRICS`), is not computed by the runner but by
:mod:`fermtl_tf.evaluation.synthetic_accuracy` (Zhao Table V: an independent classifier's
accuracy on a generator's syntheses of the benchmark's test faces). Every metric is a
fraction except NME, which is in percent (:func:`metric_unit`).

``protocol`` is ``"split"`` (one fixed test split) or ``"k_fold"`` (the runner
evaluates one fold, ``folds=[k]``;
:func:`~fermtl_tf.evaluation.runner.evaluate_fold_models` evaluates every fold with its
own model and :func:`~fermtl_tf.evaluation.runner.evaluate_folds` aggregates them). Paper short names: Hu = Hu et al. 2018 (trace norm, LSEMSW),
Kollias = FaceBehaviorNet, Li = Li et al. 2023 (MML, RAF-CE), Liu = Liu et al. 2017
((N+M)-tuple clusters), Zhao = FERSNet.
"""

from dataclasses import dataclass

TASK_METRICS = {
    "expression": ("accuracy", "mean_diagonal", "macro_f1", "uar"),
    "landmarks": ("nme_inter_pupil", "nme_inter_ocular"),
    "au": ("au_f1", "au_accuracy", "afa"),
    "va": ("ccc_valence", "ccc_arousal"),
    "identity": ("identity_accuracy", "identity_macro_f1"),
    "attributes": ("attribute_accuracy", "attribute_f1"),
}
PROTOCOLS = ("split", "k_fold")
#: Per-class metrics derived from an expression confusion matrix (true rows, predicted
#: columns): ``class_accuracy`` of one true class (its recall), ``confusion_rate`` of one
#: (true, predicted) pair (the share of the true class predicted as that class).
CONFUSION_METRICS = ("class_accuracy", "confusion_rate")
#: Metrics of an expression-synthesis model scored on a benchmark's faces, written by
#: :mod:`fermtl_tf.evaluation.synthetic_accuracy` rather than the runner: a name of its
#: own, so that a table of them never shows a classifier's ``accuracy`` on real faces.
SYNTHESIS_METRICS = ("synthetic_accuracy",)
#: Metrics whose values are percentages; every other metric is a fraction in [0, 1].
PERCENT_METRICS = ("nme_inter_pupil", "nme_inter_ocular")


def metric_unit(name):
    """``"percent"`` for NME, ``"fraction"`` for every other metric (the runner's units)."""
    return "percent" if name in PERCENT_METRICS else "fraction"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its reported metrics per task, protocol and the paper tables citing it."""

    name: str
    task_metrics: dict[str, tuple[str, ...]]
    protocol: str
    description: str
    paper_refs: tuple[str, ...]
    display_name: str = ""
    synthetic: bool = False

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"benchmark {self.name!r}: protocol must be one of {PROTOCOLS}")
        for task, names in self.task_metrics.items():
            if task not in TASK_METRICS:
                raise ValueError(f"benchmark {self.name!r}: unknown task {task!r}")
            unknown = set(names) - set(TASK_METRICS[task])
            if unknown:
                raise ValueError(
                    f"benchmark {self.name!r}: unknown {task} metric(s) {sorted(unknown)}"
                )

    @property
    def title(self):
        """Report title; a synthetic benchmark always says that it is not a real-face result."""
        name = self.display_name or self.name
        return f"{name} (synthetic) — not a real-face result" if self.synthetic else name

    @property
    def metric_names(self):
        return tuple(name for names in self.task_metrics.values() for name in names)

    def reports(self, metric):
        """Whether ``metric`` can be read from this benchmark's results (incl. per class and
        the synthesis accuracy, for any benchmark of expressions)."""
        if metric in CONFUSION_METRICS or metric in SYNTHESIS_METRICS:
            return "expression" in self.task_metrics
        return metric in self.metric_names


_ENTRIES = (
    Benchmark(
        name="synthface",
        display_name="SynthFace",
        synthetic=True,
        task_metrics={
            "expression": ("accuracy", "mean_diagonal", "macro_f1"),
            "landmarks": ("nme_inter_ocular", "nme_inter_pupil"),
            "au": ("au_f1", "au_accuracy"),
            "va": ("ccc_valence", "ccc_arousal"),
        },
        protocol="split",
        description="The embedded procedural benchmark; every task labelled exactly. "
        "A test bed for the pipeline, not evidence about real faces.",
        paper_refs=(),
    ),
    Benchmark(
        name="lsemsw",
        display_name="LSEMSW",
        task_metrics={"expression": ("accuracy",)},
        protocol="split",
        description="13 subtle emotions and mental states; fixed train/test split.",
        paper_refs=("Hu Table 4", "Hu Table 5"),
    ),
    Benchmark(
        name="300w",
        display_name="300-W",
        task_metrics={"landmarks": ("nme_inter_pupil",)},
        protocol="split",
        description="68-point landmarks; test = common (554), challenging (135) and full "
        "(689) subsets, full set by default; NME normalised by inter-pupil distance.",
        paper_refs=("Hu Table 4 (landmark error)", "Hu Table 6"),
    ),
    Benchmark(
        name="ck+",
        display_name="CK+",
        task_metrics={"expression": ("accuracy",)},
        protocol="k_fold",
        description="Identity-independent cross-validation; the papers differ: Hu 5-fold on "
        "the last frame, Zhao 10-fold on the last three frames, Liu 8-fold on the last "
        "three frames with sequence-level prediction.",
        paper_refs=("Hu Table 7", "Zhao Table II", "Zhao Table VI", "Liu Table 3"),
    ),
    Benchmark(
        name="oulu_casia",
        display_name="Oulu-CASIA",
        task_metrics={"expression": ("accuracy",)},
        protocol="k_fold",
        description="Strong-illumination VIS sequences, last three frames, 10-fold "
        "identity-independent cross-validation (Hu: 'OCNV').",
        paper_refs=("Hu Table 7", "Zhao Table III", "Zhao Table VI"),
    ),
    Benchmark(
        name="mmi",
        display_name="MMI",
        task_metrics={"expression": ("accuracy",)},
        protocol="k_fold",
        description="Three middle frames per sequence, 10-fold person-independent "
        "cross-validation.",
        paper_refs=("Zhao Table IV", "Zhao Table VI", "Liu Table 3"),
    ),
    Benchmark(
        name="sfew",
        display_name="SFEW",
        task_metrics={"expression": ("accuracy",)},
        protocol="split",
        description="7 expressions; results on the validation set.",
        paper_refs=("Liu Table 5",),
    ),
    Benchmark(
        name="raf_db",
        display_name="RAF-DB",
        task_metrics={"expression": ("mean_diagonal",)},
        protocol="split",
        description="7 basic expressions; mean diagonal of the confusion matrix.",
        paper_refs=("Kollias Sec. 4.2 ii", "Kollias Table 3", "Kollias Table 5"),
    ),
    Benchmark(
        name="raf_db_compound",
        display_name="RAF-DB compound",
        task_metrics={"expression": ("mean_diagonal",)},
        protocol="split",
        description="11 compound categories; zero-/few-shot compound prediction.",
        paper_refs=("Kollias Table 7",),
    ),
    Benchmark(
        name="affectnet",
        display_name="AffectNet",
        task_metrics={"expression": ("accuracy", "macro_f1"), "va": ("ccc_valence", "ccc_arousal")},
        protocol="split",
        description="7 basic expressions and valence/arousal on the validation set. Table 5 "
        "reports expression accuracy, Table 3 labels the same column 'F1 Score'.",
        paper_refs=("Kollias Sec. 4.2 i-ii", "Kollias Table 3", "Kollias Table 5"),
    ),
    Benchmark(
        name="aff_wild",
        display_name="Aff-Wild",
        task_metrics={"va": ("ccc_valence", "ccc_arousal")},
        protocol="split",
        description="Valence/arousal videos; CCC with and without per-video median filtering.",
        paper_refs=("Kollias Sec. 4.2 i", "Kollias Table 3", "Kollias Table 5"),
    ),
    Benchmark(
        name="aff_wild2",
        display_name="Aff-Wild2",
        task_metrics={
            "va": ("ccc_valence", "ccc_arousal"),
            "expression": ("macro_f1",),
            "au": ("au_f1",),
        },
        protocol="split",
        description="Used by Kollias for task relatedness (Table 1); only the CCC criterion "
        "is named (Sec. 4.2 i). Expression macro F1 and AU F1 follow the ABAW challenge "
        "usage; no table of the five papers reports Aff-Wild2 results.",
        paper_refs=("Kollias Sec. 4.2 i",),
    ),
    Benchmark(
        name="afew_va",
        display_name="AFEW-VA",
        task_metrics={"va": ("ccc_valence", "ccc_arousal")},
        protocol="split",
        description="Unseen-database generalisation, no training on it.",
        paper_refs=("Kollias Table 6",),
    ),
    Benchmark(
        name="emotionet",
        display_name="EmotioNet",
        task_metrics={"au": ("afa",)},
        protocol="split",
        description="AU detection; challenge score = (mean F1 + mean accuracy) / 2.",
        paper_refs=("Kollias Sec. 4.2 iii", "Kollias Table 3", "Kollias Table 5"),
    ),
    Benchmark(
        name="emotionet_compound",
        display_name="EmotioNet compound",
        task_metrics={"expression": ("macro_f1", "uar")},
        protocol="split",
        description="6 basic + 10 compound categories of the EmotioNet challenge.",
        paper_refs=("Kollias Sec. 4.2 iii", "Kollias Table 7"),
    ),
    Benchmark(
        name="disfa",
        display_name="DISFA",
        task_metrics={"au": ("au_f1",)},
        protocol="split",
        description="AU detection, F1 averaged over AUs (FERA convention).",
        paper_refs=("Kollias Sec. 4.2 iii", "Kollias Table 3", "Kollias Table 5"),
    ),
    Benchmark(
        name="bp4d",
        display_name="BP4D",
        task_metrics={"au": ("au_f1",)},
        protocol="split",
        description="AU detection, F1 averaged over AUs (FERA 2015).",
        paper_refs=("Kollias Sec. 4.2 iii", "Kollias Table 3", "Kollias Table 5"),
    ),
    Benchmark(
        name="bp4d_plus",
        display_name="BP4D+",
        task_metrics={"au": ("au_f1",)},
        protocol="split",
        description="AU detection, F1 averaged over AUs (FERA 2017).",
        paper_refs=("Kollias Sec. 4.2 iii", "Kollias Table 3", "Kollias Table 5"),
    ),
    Benchmark(
        name="gft",
        display_name="GFT",
        task_metrics={"au": ("au_f1",)},
        protocol="split",
        description="Unseen-database AU generalisation, no training on it.",
        paper_refs=("Kollias Table 6",),
    ),
    Benchmark(
        name="celeba",
        display_name="CelebA",
        task_metrics={
            "identity": ("identity_accuracy", "identity_macro_f1"),
            "attributes": ("attribute_accuracy", "attribute_f1"),
        },
        protocol="split",
        description="10,177 identities and 40 attributes, Kollias's subject-dependent "
        "re-split; total accuracy and average F1 for identities and attributes (Sec. 4.2 iv).",
        paper_refs=("Kollias Table 8",),
    ),
    Benchmark(
        name="raf_ce",
        display_name="RAF-CE",
        task_metrics={"expression": ("accuracy", "mean_diagonal")},
        protocol="split",
        description="14 compound emotions in the wild; overall accuracy (main criterion) "
        "and mean diagonal of the confusion matrix (Li Sec. 5.3).",
        paper_refs=("Li Table 2", "Li Table 3"),
    ),
)

#: Every registered benchmark by name.
BENCHMARKS = {benchmark.name: benchmark for benchmark in _ENTRIES}


def get_benchmark(name):
    """The registered :class:`Benchmark` called ``name``; a clear error lists the known ones."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}") from None
