"""Hu et al. 2018 on SynthFace (synthetic): does soft sharing beat hard sharing and single
task when the tasks' data are disjoint and shifted?

Two disjoint, domain-shifted SynthFace datasets (expressions of some identities rendered
in the 'wild' domain; landmarks of other identities in the 'lab' domain, as LSEMSW and
300-W in the paper, §4.1) train the variants of ``train/configs/hu2018/synthface_*.yaml``:
single task, hard sharing RN(k), the trace-norm soft sharing LAF / Tucker / TT (§2.2,
Eqs. 1-3; reference normalisation) and LAF + ADA (§2.3, Eq. 4, Ganin reversal ramp).

The trace-norm strength of each of LAF, Tucker and TT is chosen among ``STRENGTHS`` on the
VALIDATION splits with the first seed (the strength whose mean relative validation error
over the two tasks, against single task, is lowest); the chosen strength is then trained
with every seed and LAF + ADA uses LAF's. Every run is exported and scored on the test
splits by the evaluation runner (expression accuracy, inter-ocular landmark NME); the
page gives mean +- sd and paired differences (95 % t interval) against single task and
against RN(k). One command::

    python train/hu2018_synthface_study.py            # prepare, sweep, train, page

Numbers from SynthFace are not claims about LSEMSW or 300-W.
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# one thread per training process (the workers inherit it): the machine is shared
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fermtl_tf.experiments import study  # noqa: E402

STUDY = "hu2018"
CONFIGS = ROOT / "train" / "configs" / "hu2018"
#: (key, table label, config); the trace-norm variants are completed by the sweep.
FIXED_VARIANTS = [("single_task", "Single task", "synthface_single_task.yaml"),
                  ("rn4", "Hard sharing RN(4)", "synthface_rn4.yaml")]
TRACE_NORM_VARIANTS = [("laf", "LAF", "synthface_laf.yaml"),
                       ("tucker", "Tucker", "synthface_tucker.yaml"),
                       ("tt", "TT", "synthface_tt.yaml")]
ADA_VARIANT = ("laf_ada", "LAF + ADA", "synthface_laf_ada.yaml")
#: Trace-norm strengths tried on the validation splits (reference normalisation).
STRENGTHS = (1e-2, 1e-1, 1.0)
SINGLE_TASK, HARD_SHARING = "single_task", "rn4"

#: The two datasets: disjoint identities (different generator seeds), shifted domains.
DATASETS = {
    "expression": ["--vocabulary", "basic7", "--intensity", "strong", "--domain", "wild",
                   "--seed", "0"],
    "landmarks": ["--domain", "lab", "--intensity", "strong", "--seed", "1"],
}
SIZE_PREP = ["--identities", "240", "--sequences-per-identity", "14",
             "--frames-per-sequence", "1", "--crop-from", "landmarks", "--size", "64",
             "--quiet"]
#: (task, metric in results.json, higher is better): what the study compares.
CRITERIA = [("expression", "accuracy", True),
            ("landmarks", "nme_inter_ocular", False)]


def prepare(data_dir):
    """Prepare (or reuse) the two SynthFace folders; returns {task: folder}."""
    from fermtl_tf.cli.prep import main as prep_main

    folders = {task: Path(data_dir) / f"synthface_{task}" for task in DATASETS}
    for task, args in DATASETS.items():
        if not (folders[task] / "manifest.json").exists():
            code = prep_main(["synthface", "--out", str(folders[task]), *args, *SIZE_PREP])
            if code:
                raise SystemExit(f"fermtl-prep failed for {folders[task]} (exit {code})")
    return folders


def data_overrides(folders):
    """Config overrides pointing every variant at the prepared folders."""
    return [f"data.{part}.{index}.folder={folders[task]}"
            for part in ("train", "validation")
            for index, task in enumerate(("expression", "landmarks"))]


def evaluations(folders, split):
    return [study.Evaluation(f"{task}_{split}", folders[task], split=split)
            for task in ("expression", "landmarks")]


def sweep_evaluations(folders):
    """The sweep's runs are scored on validation (to choose) and test (to be reused)."""
    return [*evaluations(folders, "val"), *evaluations(folders, "test")]


def strength_variants():
    """Every (method, strength) of the sweep as a study Variant keyed ``<method>_s<s>``.

    A run at the strength its config holds keeps the config's ``name`` (so fermtl-report
    counts it as a run of that config); the other strengths get their own names.
    """
    from fermtl_tf.experiments.config import load_config

    variants = {}
    for key, label, config in TRACE_NORM_VARIANTS:
        parsed = load_config(CONFIGS / config)
        for strength in STRENGTHS:
            overrides = [f"sharing.trace_norm.strength={strength}"]
            if strength != parsed.sharing.trace_norm.strength:
                overrides.append(f"name={parsed.name}_strength{strength:g}")
            variants[(key, strength)] = study.Variant(
                f"{key}_s{strength:g}", f"{label} (strength {strength:g})", CONFIGS / config,
                tuple(overrides))
    return variants


def fixed_variants():
    return [study.Variant(key, label, CONFIGS / config)
            for key, label, config in FIXED_VARIANTS]


def _train_one(variant, seed, scored_on, runs_dir, overrides):
    """One (variant, seed) run of :func:`study.run_study` (a worker process's job)."""
    study.run_study([variant], [seed], scored_on, runs_dir, overrides=overrides,
                    log=lambda message: print(message, flush=True))


def train_runs(jobs, runs_dir, overrides, workers):
    """Train and score ``jobs`` ((variant, seed, evaluations) triples), ``workers`` at a
    time in separate processes (one TensorFlow each, one intra-op thread); the results
    stay under ``runs_dir`` where :func:`study.run_study` reads them back."""
    if workers <= 1:
        for variant, seed, scored_on in jobs:
            _train_one(variant, seed, scored_on, runs_dir, overrides)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_train_one, variant, seed, scored_on, runs_dir, overrides)
                   for variant, seed, scored_on in jobs]
        for future in futures:
            future.result()


def read_runs(pairs, scored_on, runs_dir, log):
    """The study frame of (variant, seed) pairs whose runs are complete (nothing trained)."""
    import pandas as pd

    frames = [study.run_study([variant], [seed], scored_on, runs_dir, log=log)
              for variant, seed in pairs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=study.STUDY_COLUMNS)


def sweep(folders, runs_dir, seed, log, train=True):
    """Score the sweep (seed ``seed``); returns ({method: chosen strength}, its table, frame).

    The runs are trained by :func:`train_runs` beforehand, or here one by one; with
    ``train=False`` only complete runs are read and a method is chosen for only when
    every one of its strengths is complete."""
    import pandas as pd

    variants = strength_variants()
    reference = fixed_variants()[0]
    pairs = [(variant, seed) for variant in [reference, *variants.values()]]
    if not train:
        pairs = study.completed([v for v, _ in pairs], [seed], sweep_evaluations(folders),
                                runs_dir)
    frame = read_runs(pairs, sweep_evaluations(folders), runs_dir, log)
    done = set(frame["variant"])
    if reference.key not in done:
        return {}, pd.DataFrame(), frame
    criteria = [(f"{task}_val", metric, higher) for task, metric, higher in CRITERIA]
    scores = study.relative_errors(frame, reference.key, criteria)
    accuracy, nme = (f"{evaluation}/{metric}" for evaluation, metric, _ in criteria)
    chosen, rows = {}, [{"method": "Single task", "strength": "-",
                         "val. accuracy (%)": f"{100 * scores.loc[reference.key, accuracy]:.2f}",
                         "val. NME (%)": f"{scores.loc[reference.key, nme]:.2f}",
                         "relative error vs single task": "1 (reference)", "chosen": ""}]
    for key, label, _ in TRACE_NORM_VARIANTS:
        keys = {s: variants[(key, s)].key for s in STRENGTHS if variants[(key, s)].key in done}
        if len(keys) == len(STRENGTHS):
            chosen[key] = min(STRENGTHS, key=lambda s: scores.loc[keys[s], "score"])
        for strength, variant_key in keys.items():
            row = scores.loc[variant_key]
            rows.append({"method": label, "strength": f"{strength:g}",
                         "val. accuracy (%)": f"{100 * row[accuracy]:.2f}",
                         "val. NME (%)": f"{row[nme]:.2f}",
                         "relative error vs single task": f"{row['score']:.3f}",
                         "chosen": "yes" if strength == chosen.get(key) else ""})
    return chosen, pd.DataFrame(rows), frame


def final_variants(chosen):
    """Single task, RN(k), each trace norm at its chosen strength, LAF + ADA at LAF's;
    returns (variants, {key: table label}) in table order."""
    variants = strength_variants()
    final = fixed_variants()
    labels = {variant.key: variant.label for variant in final}
    for key, label, _ in TRACE_NORM_VARIANTS:
        if key in chosen:  # (only a partial sweep lacks a choice)
            final.append(variants[(key, chosen[key])])
            labels[final[-1].key] = f"{label} ({chosen[key]:g})"
    key, label, config = ADA_VARIANT
    if "laf" in chosen:
        final.append(study.Variant(key, label, CONFIGS / config,
                                   (f"sharing.trace_norm.strength={chosen['laf']}",)))
        labels[key] = f"{label} ({chosen['laf']:g})"
    return final, labels


#: What the figures cannot show, whichever way they fall (the page's last paragraph).
CAVEATS = [
    "What they do not show: anything about LSEMSW or 300-W (synthetic faces, one "
    "generator); the paper's scale (a width-8 ResNet-18 trained for minutes, not a "
    "width-64 ResNet-34); differences smaller than the intervals (three seeds, one data "
    "draw: the intervals cover seed-to-seed variation of training, not a new sample of "
    "faces or identities). The strengths were chosen on validation with the first seed, "
    "whose test runs are also in the tables; the other seeds are untouched by the choice. "
    "A variant 'not distinguishable' from another is not shown equal to it.",
]


def run_seconds(*frames):
    """(runs, wall, CPU seconds) over the distinct runs of the frames (training + export,
    as each run recorded them; evaluations excluded)."""
    import pandas as pd

    runs = pd.concat(frames).drop_duplicates(["variant", "seed"])
    return len(runs), float(runs["wall_seconds"].sum()), float(runs["cpu_seconds"].sum())


def comparison(table, labels, higher_is_better, scale):
    """Mean +- sd, paired differences vs single task and vs RN(k) in one table."""
    versus = {}
    for reference in (SINGLE_TASK, HARD_SHARING):
        part = study.comparison_table(table, reference, labels, scale=scale,
                                      higher_is_better=higher_is_better)
        versus[reference] = part.rename(columns={"wins": f"wins vs {labels[reference]}"})
    merged = versus[SINGLE_TASK]
    for column in versus[HARD_SHARING].columns[3:]:
        merged[column] = versus[HARD_SHARING][column]
    return merged


def verdicts(table, labels, higher_is_better, what):
    """One sentence per soft-sharing variant: where its paired 95 % intervals lie."""
    lines = []
    for variant in [v for v in labels if v != SINGLE_TASK and v in table.columns]:
        parts = []
        for reference in [r for r in (SINGLE_TASK, HARD_SHARING) if r != variant]:
            d = study.paired_differences(table, reference, [variant, reference],
                                         higher_is_better=higher_is_better).loc[variant]
            better = d["ci_low"] > 0 if higher_is_better else d["ci_high"] < 0
            worse = d["ci_high"] < 0 if higher_is_better else d["ci_low"] > 0
            verdict = ("better than" if better else "worse than" if worse
                       else "not distinguishable from")
            if d["n"] < 2:
                verdict = "no interval (one seed) against"
            parts.append(f"{verdict} {labels[reference]}")
        lines.append(f"* {labels[variant]}: {what} {', '.join(parts)} "
                     f"(95 % paired intervals).")
    return lines


def missing_runs(chosen, seeds, pairs, sweep_frame):
    """Text lines naming the runs a partial study still lacks (empty when complete)."""
    lines = []
    swept = set(sweep_frame["variant"])
    for variant in [*fixed_variants()[:1], *strength_variants().values()]:
        if variant.key not in swept:
            lines.append(f"* sweep: {variant.label}, seed {seeds[0]}")
    for key, label, _ in [*TRACE_NORM_VARIANTS, ADA_VARIANT]:
        if (key if key != "laf_ada" else "laf") not in chosen:
            lines.append(f"* {label}: every seed (its strength is not chosen yet)")
    done = {(variant.key, seed) for variant, seed in pairs}
    for variant in final_variants(chosen)[0]:
        absent = [seed for seed in seeds if (variant.key, seed) not in done]
        if absent:
            lines.append(f"* {variant.label} ({variant.key}): seed(s) "
                         f"{', '.join(map(str, absent))}")
    return lines


def edge_note(sweep_table):
    """A line naming the methods whose chosen strength is an end of the grid."""
    if sweep_table.empty:
        return []
    ends = {f"{min(STRENGTHS):g}": "lowest", f"{max(STRENGTHS):g}": "highest"}
    chosen = sweep_table[sweep_table["chosen"] == "yes"]
    at_end = [f"{row.method} ({ends[row.strength]})" for row in chosen.itertuples()
              if row.strength in ends]
    if not at_end:
        return []
    return [f"Chosen at an end of the grid: {', '.join(at_end)}; a strength beyond it was "
            "not tried, so the best one may lie further out.", ""]


def write_page(page, frame, sweep_frame, sweep_table, labels, folders, seeds, seconds,
               command, missing=()):
    """The study's page and its two plots (under docs/results/)."""
    from fermtl_tf.data.pipeline import load_manifest
    from fermtl_tf.evaluation.reproduction import markdown_table
    from fermtl_tf.experiments.config import load_config

    page = Path(page)
    config = load_config(CONFIGS / FIXED_VARIANTS[0][2])
    ada = load_config(CONFIGS / ADA_VARIANT[2]).coupling
    accuracy = study.measure(frame, "expression_test", "accuracy")
    nme = study.measure(frame, "landmarks_test", "nme_inter_ocular")
    plots = {}
    for name, table, ylabel, scale in (("expression", accuracy, "accuracy (%)", 100.0),
                                       ("landmarks", nme, "NME inter-ocular (%)", 1.0)):
        plots[name] = study.plot_study(
            table, labels, page.with_name(f"{page.stem}_{name}.png"), ylabel,
            f"SynthFace (synthetic): Hu et al. 2018, {name} test set", scale=scale)
    samples = frame.groupby("evaluation")["samples"].max()
    splits = {task: load_manifest(str(folders[task]))["splits"] for task in folders}
    runs, wall, cpu = run_seconds(frame, sweep_frame)
    backbone, train = config.backbone, config.data.train
    lines = [
        "# Hu et al. 2018 on SynthFace (synthetic): soft sharing vs hard sharing vs single task",
        "",
        "SynthFace (synthetic): procedurally rendered faces; these figures are not claims "
        "about LSEMSW or 300-W.",
        "",
        *([f"**Incomplete: the runs below were not finished when this page was written "
           f"(`{command}`); rerunning `python train/hu2018_synthface_study.py` trains them "
           "and rewrites the page.** Tables show the complete runs only.", "", *missing, ""]
          if missing else []),
        "**Question.** Does soft sharing (the trace norms LAF, Tucker, TT of §2.2, with and "
        "without adversarial domain alignment, §2.3) beat hard sharing and single task when "
        "the tasks' data are disjoint and shifted (§4.1: LSEMSW expressions, 300-W "
        "landmarks)?",
        "",
        "## Data",
        "",
        "| task | vocabulary | domain | intensity | generator seed | identities | "
        "train / val / test faces |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task in ("expression", "landmarks"):
        args = dict(zip(DATASETS[task][::2], DATASETS[task][1::2], strict=True))
        split = splits[task]
        lines.append(f"| {task} | {args.get('--vocabulary', '-')} | {args['--domain']} | "
                     f"{args['--intensity']} | {args['--seed']} | "
                     f"{SIZE_PREP[1]} | {split['train']} / {split['val']} / {split['test']} |")
    lines += [
        "",
        f"One apex frame per sequence ({SIZE_PREP[3]} sequences per identity), "
        f"{SIZE_PREP[-2]} px crops from the true landmarks; splits by identity. Different "
        "generator seeds give the two tasks different people, and the domains differ "
        "(lighting, background, noise), so no image carries both labels and the inputs are "
        "shifted, as between LSEMSW and 300-W. Calibration: the paper's 13 subtle mental "
        "states in 'wild' left the single-task network at chance (7.7 %) in the old "
        "ablation, and 7 basic classes at `mixed` intensity reached only 23 % validation "
        "accuracy after 6 epochs at learning rate 0.01 (chance 14 %); at `strong` "
        "intensity the single-task baseline learns into the 30-85 % band within the "
        "budget, so differences between variants can show.",
        "",
        "## Model and training (departures from the paper)",
        "",
        f"Stacked ResNet-{backbone.depth}, width {backbone.width}, {backbone.stem} stem, "
        f"{config.data.image_size[0]} px (paper: ResNet-34, width 64, 224 px); batch "
        f"{train[0].batch_size} per task (paper 256); SGD momentum "
        f"{config.optimizer.momentum}, learning rate {config.optimizer.learning_rate} with a "
        f"{config.schedule.name} decay, {config.epochs} epochs (paper: longer training, "
        "initial rate 0.01 with steps); expression softmax cross entropy and landmark l1 on "
        "whitened coordinates (§4.1), weights 1. Hard sharing RN(4) shares the stem and the "
        "first stage (the paper's RN(6) point of ResNet-34). Trace norms: reference "
        "normalisation (mean over unfoldings and layers, the authors' code), exact SVD; "
        f"strength per method chosen among {', '.join(f'{s:g}' for s in STRENGTHS)} on the "
        f"validation splits with seed {seeds[0]} (table below; paper: one unstated "
        f"strength). LAF + ADA: LAF at LAF's chosen strength plus the dataset classifier "
        f"behind a gradient reversal ramped 0 -> {ada.reversal_scale:g} by Ganin's "
        f"2/(1+e^(-{ada.gamma:g}p)) - 1, loss weight {ada.weight:g}. Seeds "
        f"{', '.join(map(str, seeds))}; a seed fixes initial weights and data order, so "
        "differences are paired by seed.",
        "",
        "## Command and cost",
        "",
        f"`{command}`",
        "",
        f"{runs} runs; training + export summed over the runs: {wall / 60:.1f} min wall, "
        f"{cpu / 60:.1f} CPU-min (one intra-op thread each; the machine was shared with "
        f"other work, so wall time exceeds CPU time; `--workers` runs at a time). This "
        f"invocation: "
        f"{seconds[0] / 60:.1f} min wall, {seconds[1] / 60:.1f} CPU-min (runs already "
        "complete are reused).",
        "",
        f"## Strength sweep (validation, seed {seeds[0]})",
        "",
        "Relative error = mean over the two tasks of (variant's validation error / single "
        "task's), with error = 1 - accuracy and NME; lowest chosen.",
        "",
        markdown_table(sweep_table),
        "",
        *edge_note(sweep_table),
        f"## Expression accuracy (test, {samples.get('expression_test', 0)} faces)",
        "",
        markdown_table(comparison(accuracy, labels, True, 100.0)),
        "",
        f"![expression accuracy]({plots['expression'].name})",
        "",
        f"## Landmark NME, inter-ocular (test, {samples.get('landmarks_test', 0)} faces; lower "
        "is better; wins = seeds with lower NME)",
        "",
        markdown_table(comparison(nme, labels, False, 1.0)),
        "",
        f"![landmark NME]({plots['landmarks'].name})",
        "",
        "Mean ± sd over seeds; paired diff. = mean over seeds of (variant - reference) with "
        "a two-sided 95 % Student-t interval. Paper (LSEMSW, Table 4): single task 28.39, "
        "RN(6) 30.07, LAF 33.43, Tucker 33.39, TT 33.41, LAF + ADA 36.72 % accuracy; 300-W "
        "(§4.2): LAF 4.67, LAF + ADA 4.64 % error.",
        "",
        "## Reading",
        "",
        "What the intervals say (computed by the script from the tables above):",
        "",
        *verdicts(accuracy, labels, True, "expression accuracy"),
        *verdicts(nme, labels, False, "landmark NME"),
        "",
        *CAVEATS,
        "",
    ]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines))
    return page


def main(argv=None):
    parser = study.study_parser(STUDY, __doc__.split("\n\n")[0])
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: write the page from the runs complete so far "
                             "and list the missing ones")
    parser.add_argument("--workers", type=int, default=2,
                        help="runs trained at a time, one process and one thread each "
                             "(default 2: the two cores the study is sized for)")
    args = parser.parse_args(argv)
    wall, cpu = time.perf_counter(), study.cpu_seconds()

    def log(message):
        print(message, flush=True)

    folders = prepare(args.data)
    runs_dir = Path(args.runs)
    overrides = data_overrides(folders)
    test, first = evaluations(folders, "test"), args.seeds[0]
    # first what does not depend on the sweep: the baselines and the sweep itself
    train = not args.no_train
    if train:  # first what does not depend on the sweep: the baselines and the sweep
        train_runs([(variant, seed, sweep_evaluations(folders) if seed == first
                     and variant.key == SINGLE_TASK else test)
                    for seed in args.seeds for variant in fixed_variants()]
                   + [(variant, first, sweep_evaluations(folders))
                      for variant in strength_variants().values()],
                   runs_dir, overrides, args.workers)
    chosen, sweep_table, sweep_frame = sweep(folders, runs_dir, first, log, train)
    log(f"chosen strengths: {chosen}")
    variants, labels = final_variants(chosen)
    if train:
        train_runs([(variant, seed, test) for seed in args.seeds for variant in variants],
                   runs_dir, overrides, args.workers)
    pairs = [(variant, seed) for seed in args.seeds for variant in variants]
    if not train:
        pairs = study.completed(variants, args.seeds, test, runs_dir)
    frame = read_runs(pairs, test, runs_dir, log)
    missing = missing_runs(chosen, args.seeds, pairs, sweep_frame)
    frame.to_csv(runs_dir / "study.csv", index=False)
    seconds = (time.perf_counter() - wall, study.cpu_seconds() - cpu)
    if args.page:
        command = " ".join(["python train/hu2018_synthface_study.py",
                            *(sys.argv[1:] if argv is None else argv)])
        write_page(args.page, frame, sweep_frame, sweep_table, labels, folders, args.seeds,
                   seconds, command, missing)
    print(json.dumps({"study": STUDY, "seeds": args.seeds,
                      "wall_seconds": round(time.perf_counter() - wall, 1),
                      "cpu_seconds": round(study.cpu_seconds() - cpu, 1),
                      "page": args.page or None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
