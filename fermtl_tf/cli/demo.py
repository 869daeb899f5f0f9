"""``fermtl-demo``: the whole pipeline on SynthFace, end to end, on a laptop CPU.

1. synthesise a small SynthFace set and prepare it with MTCNN (``fermtl-prep synthface``);
2. train the two single-task baselines (expression, 68-point landmarks) with ``fit``;
3. export both as SavedModels that take raw pixels;
4. evaluate the SavedModels on the test split and print one table, beside the floors a
   reader needs to judge them (chance accuracy, the mean-shape NME).

The demo configs set ``deterministic: true`` (ordered input pipelines, op determinism):
rerunning ``make demo`` on the same machine prints the same figures.

Every figure it prints comes from SynthFace, a synthetic benchmark, and says so.
"""

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path

import yaml

DEMO_CONFIGS = ("expression", "landmarks")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fermtl-demo",
        description="Synthesize SynthFace, prepare it with MTCNN, train, export and "
                    "evaluate the expression and landmark baselines.",
    )
    parser.add_argument("--out", default="demo_output", help="working folder (default: demo_output)")
    parser.add_argument("--identities", type=int, default=120,
                        help="SynthFace identities (default 120; split 70/15/15 by identity)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs for both baselines (default: the demo configs')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def demo_config(task, data_dir, run_dir, epochs, seed):
    """The packaged demo config for ``task`` pointed at this run's folders."""
    text = resources.files("fermtl_tf.configs").joinpath("demo", f"{task}.yaml").read_text()
    raw = yaml.safe_load(text)
    for section in ("train", "validation"):
        for source in raw["data"][section]:
            source["folder"] = str(data_dir)
    raw["output_dir"] = str(run_dir / task)
    raw["seed"] = seed
    if epochs is not None:
        raw["epochs"] = epochs
    return raw


def prepare(data_dir, identities, seed, quiet):
    """Generate and MTCNN-prepare SynthFace; returns the manifest dict."""
    from fermtl_tf.cli import prep

    argv = ["synthface", "--out", str(data_dir), "--identities", str(identities),
            "--seed", str(seed), "--sequences-per-identity", "4", "--frames-per-sequence", "3",
            "--select-frames", "last:2",
            "--vocabulary", "basic7", "--domain", "lab"]
    status = prep.main(argv + (["--quiet"] if quiet else []))
    if status:
        raise SystemExit(status)
    return json.loads((data_dir / "manifest.json").read_text())


def train_export_evaluate(task, data_dir, out, args):
    """Train one baseline, export it, evaluate the SavedModel on the test split."""
    from fermtl_tf.evaluation import evaluate_saved_model
    from fermtl_tf.experiments.experiment import run_experiment

    config = demo_config(task, data_dir, out / "runs", args.epochs, args.seed)
    # A rerun of the demo retrains from scratch (the configs are deterministic: the same
    # seed gives the same figures on the same machine).
    result = run_experiment(config, verbose=0 if args.quiet else 2, restart=True)
    export_dir = result.export(out / "export" / task)
    return evaluate_saved_model(export_dir, data_dir, benchmark="synthface", split="test",
                                out_dir=out / "eval" / task)


def results_table(expression, landmarks, floors, counts):
    """The demo's one Markdown table: model figures beside their floors."""
    e, lm = expression["metrics"], landmarks["metrics"]
    rows = [
        ("expression accuracy (%)", 100 * e["accuracy"],
         f"chance {100 * floors['uniform']:.1f}, majority {100 * floors['majority']:.1f}"),
        ("expression mean diagonal (%)", 100 * e["mean_diagonal"], ""),
        ("expression macro F1 (%)", 100 * e["macro_f1"], ""),
        ("landmark NME, inter-ocular (%)", lm["nme_inter_ocular"],
         f"mean shape {floors['mean_shape_inter_ocular']:.2f}"),
        ("landmark NME, inter-pupil (%)", lm["nme_inter_pupil"],
         f"mean shape {floors['mean_shape_inter_pupil']:.2f}"),
    ]
    lines = [
        "SynthFace (synthetic) demo, test split — not a real-face result",
        f"faces written {counts['written']} of {counts['inputs']} "
        f"(skipped {counts['skipped']}); test faces {expression['num_samples']}",
        "",
        "| metric | model | reference |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {value:.2f} | {ref} |" for name, value, ref in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Run the demo; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    data_dir = out / "data"
    start = time.perf_counter()
    manifest = prepare(data_dir, args.identities, args.seed, args.quiet)

    from fermtl_tf.evaluation.baselines import chance_accuracy, mean_shape_nme

    results = {task: train_export_evaluate(task, data_dir, out, args) for task in DEMO_CONFIGS}
    floors = chance_accuracy(data_dir)
    for normalization in ("inter_ocular", "inter_pupil"):
        floors[f"mean_shape_{normalization}"] = mean_shape_nme(data_dir,
                                                               normalization=normalization)
    table = results_table(results["expression"], results["landmarks"], floors,
                          manifest["counts"])
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(
        {"results": results, "floors": floors, "seconds": time.perf_counter() - start},
        indent=2, default=float))
    print(table)
    print(f"demo finished in {time.perf_counter() - start:.0f} s; reports under {out}/eval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
