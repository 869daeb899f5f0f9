"""``fermtl-report``: the papers' numbers beside ours, for every row of every table.

Example::

    fermtl-report --runs runs --readme README.md

Reads the transcribed tables in ``evaluate/references/*.yaml`` and every ``results.json``
that ``fermtl-eval --out`` wrote under ``--runs`` (each tied to its training config by the
``config.yaml`` that ``fermtl-train`` wrote in the run folder), averages the folds, and
writes ``docs/REPRODUCTION.md`` and its JSON twin (``<runs>/reproduction.json`` unless
``--json`` says otherwise: it belongs with the runs it summarises); with ``--readme`` it also
refreshes that file's "Reproduction status" section. Without ``--runs`` every configured
row reads "not run". Run it from the repository root (config paths are relative to it).
Bad input is reported in one line naming the file, with exit status 2.

``--synthface`` first runs every SynthFace study of the repository
(``train/<paper>_synthface_study.py``, one command per method issue) with the seeds given
(default: seed 0 only, the quick reproduction), its runs under ``<runs>/studies/<paper>``
and without rewriting the studies' pages, then reports: the SynthFace column fills from
those runs. Runs a study already finished there are reused, so after the full studies
(``python train/<paper>_synthface_study.py``, whose runs land in ``runs/studies/<paper>``)
``fermtl-report --synthface --runs runs`` only reads them.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from fermtl_tf.evaluation import reproduction
from fermtl_tf.evaluation.references import ReferenceError, load_references


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fermtl-report",
        description="Compare the papers' reported results with fermtl-eval results.",
    )
    parser.add_argument("--references", default="evaluate/references",
                        help="folder of reference *.yaml files (default: evaluate/references)")
    parser.add_argument("--runs", default=None,
                        help="folder searched for results.json files (default: none, all 'not run')")
    parser.add_argument("--root", default=".",
                        help="folder the config paths are relative to (default: .)")
    parser.add_argument("--out", default="docs/REPRODUCTION.md", help="Markdown report path")
    parser.add_argument("--json", default=None,
                        help="JSON report path (default: <runs>/reproduction.json; none "
                             "without --runs)")
    parser.add_argument("--readme", default=None,
                        help="README whose 'Reproduction status' section is rewritten")
    parser.add_argument("--synthface", action="store_true",
                        help="first run every train/*_synthface_study.py (quick: --seeds) "
                             "into <runs>/studies/<paper>; --runs defaults to 'runs'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="seeds of the --synthface studies (default: 0)")
    return parser


#: The study scripts --synthface runs: one per method issue, named for its paper.
STUDY_PATTERN = "train/*_synthface_study.py"
STUDY_SUFFIX = "_synthface_study"


def study_scripts(root):
    """{paper: script path} of the SynthFace studies under ``root``, sorted by paper."""
    scripts = sorted(Path(root).glob(STUDY_PATTERN))
    return {path.stem[:-len(STUDY_SUFFIX)]: path for path in scripts}


def run_studies(scripts, runs_dir, seeds, root="."):
    """Run each study (its page not rewritten); returns {paper: wall seconds}.

    A study that fails stops the report: a SynthFace column with silent holes would read
    as "not run" where the truth is "broken".
    """
    seconds = {}
    for paper, script in scripts.items():
        command = [sys.executable, str(script), "--seeds", *map(str, seeds),
                   "--runs", str(Path(runs_dir) / "studies" / paper), "--page", ""]
        print(f"fermtl-report: running the {paper} SynthFace study: {' '.join(command)}",
              flush=True)
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=root, check=False)
        seconds[paper] = time.perf_counter() - started
        if completed.returncode:
            raise StudyFailed(f"{script} exited with status {completed.returncode}")
    return seconds


class StudyFailed(RuntimeError):
    """A SynthFace study script of ``--synthface`` failed; the message names it."""


def build_report(references_dir, runs_dir=None, root="."):
    """(cells, summary, unmatched results) for the references and runs given."""
    references = load_references(references_dir, root=root)
    cells = reproduction.reference_cells(references, root=root)
    if runs_dir is None:
        records = pd.DataFrame(columns=reproduction.RECORD_COLUMNS)
        unmatched = []
    else:
        records, unmatched = reproduction.run_records(runs_dir)
    cells = reproduction.compare(cells, records)
    return cells, reproduction.paper_summary(cells), unmatched


def main(argv=None):
    """Run the command; returns the exit status (0 success, 2 bad input)."""
    args = build_parser().parse_args(argv)
    if args.synthface:
        args.runs = args.runs or "runs"
        scripts = study_scripts(args.root)
        if not scripts:
            print(f"fermtl-report: error: no {STUDY_PATTERN} under {args.root}", file=sys.stderr)
            return 2
        try:
            seconds = run_studies(scripts, args.runs, args.seeds, args.root)
        except StudyFailed as error:
            print(f"fermtl-report: error: {error}", file=sys.stderr)
            return 1
        for paper, wall in seconds.items():
            print(f"fermtl-report: {paper} study: {wall / 60:.1f} min")
    try:
        cells, summary, unmatched = build_report(args.references, args.runs, args.root)
    except (ReferenceError, reproduction.ReportInputError) as error:
        print(f"fermtl-report: error: {error}", file=sys.stderr)
        return 2
    runs_label = f"`{args.runs}`" if args.runs else "no runs folder (every row not run)"
    markdown = reproduction.render_markdown(cells, summary, runs_label, unmatched)
    outputs = [(args.out, markdown)]
    json_path = args.json or (args.runs and str(Path(args.runs) / "reproduction.json"))
    if json_path:
        outputs.append((json_path, json.dumps(reproduction.report_json(cells, summary, unmatched),
                                              ensure_ascii=False, allow_nan=False)))
    for path, text in outputs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
    if args.readme:
        readme = Path(args.readme)
        section = reproduction.readme_section(summary)
        readme.write_text(reproduction.update_readme(readme.read_text(encoding="utf-8"), section),
                          encoding="utf-8")
    print(reproduction.markdown_table(reproduction.summary_table(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
