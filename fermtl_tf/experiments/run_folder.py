"""A run's output folder across reruns: resume, restart, refuse what would lose work.

``run_experiment`` calls :func:`prepare_run_folder` before it writes anything:

* a finished run (``model.keras`` present) is never overwritten unless ``restart``;
* an interrupted run (``backup/`` present) resumes only with the config it was started
  with, except ``epochs`` (a longer or shorter run of the same experiment); any other
  difference is an error naming the keys, since the restored optimiser and weights would
  silently continue under the old settings while ``config.yaml`` recorded the new ones;
* ``restart`` deletes the files a run writes (:data:`RUN_OUTPUTS`, nothing else) and
  starts over in place.

On a resume :func:`restored_history` cuts ``history.csv`` back to the epochs the backup
holds (a kill between the CSV row and the backup leaves one row too many) and returns
its rows, from which the best-model checkpoint takes its best value so far.
"""

import csv
import math
import os
import shutil
from pathlib import Path

import yaml

from fermtl_tf.errors import ConfigError
from fermtl_tf.experiments.config import config_to_dict
from fermtl_tf.training.callbacks import resumed_epoch

#: What a run writes into its output folder (``--restart`` removes exactly these).
RUN_OUTPUTS = ("backup", "checkpoints", "logs", "export", "history.csv", "model.keras",
               "config.yaml")

#: Keys a resumed run may change.
RESUMABLE_CHANGES = ("epochs",)


def config_differences(old, new, prefix=""):
    """Dotted keys whose values differ between two plain config dicts (sorted)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new), key=str)
        return [key for name in keys
                for key in config_differences(old.get(name), new.get(name),
                                              f"{prefix}.{name}" if prefix else str(name))]
    return [] if old == new else [prefix or "<root>"]


def _saved_config(path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the interrupted run's config ({error}); "
                          f"rerun with --restart to start over") from None


def remove_run_outputs(output):
    """Delete the files of :data:`RUN_OUTPUTS` in ``output`` (nothing else)."""
    for name in RUN_OUTPUTS:
        path = output / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def prepare_run_folder(config, restart=False, source="<config>"):
    """Check ``config.output_dir`` against the run it may hold; return the epoch to start at.

    Raises ConfigError (one line: the folder, the reason, the way out) for a finished run
    or a changed config, unless ``restart``, which empties the run's files first.
    """
    output = Path(config.output_dir)
    if restart:
        remove_run_outputs(output)
        return 0
    if (output / "model.keras").exists():
        raise ConfigError(f"{source}: {output} holds a finished run (model.keras); rerun "
                          f"with --restart to replace it, or --output elsewhere")
    epoch = resumed_epoch(output)
    if epoch == 0:
        return 0
    saved = output / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{source}: {output} holds an interrupted run (epoch {epoch}) "
                          f"without its config.yaml, so it cannot be checked; rerun with "
                          f"--restart to start over, or --output elsewhere")
    changed = [key for key in config_differences(_saved_config(saved), config_to_dict(config))
               if key not in RESUMABLE_CHANGES]
    if changed:
        raise ConfigError(f"{source}: {output} holds an interrupted run (epoch {epoch}) of "
                          f"another config: {', '.join(changed)} differ(s) from its "
                          f"config.yaml (only {', '.join(RESUMABLE_CHANGES)} may change on "
                          f"a resume); rerun with --restart to start over, or --output "
                          f"elsewhere")
    return epoch


def is_finished_run(config):
    """Whether ``config.output_dir`` holds a finished run of exactly ``config`` (its
    ``model.keras`` written and its ``config.yaml`` equal): a k-fold rerun reuses it."""
    output = Path(config.output_dir)
    saved = output / "config.yaml"
    return ((output / "model.keras").is_file() and saved.is_file()
            and not config_differences(_saved_config(saved), config_to_dict(config)))


def _backed_up_lines(path, epoch):
    """Header and the rows of the first ``epoch`` epochs of a history file."""
    kept = path.read_text().splitlines(keepends=True)[: epoch + 1]
    if kept and not kept[-1].endswith("\n"):
        kept = kept[:-1]  # a row cut by the kill
    return kept


def restored_history(output, epoch):
    """The first ``epoch`` rows of ``output/history.csv`` (dicts of strings), after cutting
    the file back to them; [] for a fresh run.

    The cut replaces the file whole, so that another worker reading it meanwhile
    (:func:`backed_up_history`) sees the same first rows either way.
    """
    path = Path(output) / "history.csv"
    if epoch == 0 or not path.is_file():
        return []
    kept = _backed_up_lines(path, epoch)
    partial = path.with_name("history.csv.partial")
    partial.write_text("".join(kept))
    os.replace(partial, path)
    return list(csv.DictReader(kept))


def backed_up_history(output, epoch):
    """The rows :func:`restored_history` keeps, without touching the file: a non-chief
    worker reads the chief's history to take the same best value."""
    path = Path(output) / "history.csv"
    if epoch == 0 or not path.is_file():
        return []
    return list(csv.DictReader(_backed_up_lines(path, epoch)))


def best_so_far(rows, monitor="val_loss"):
    """The lowest finite ``monitor`` value of the history rows, or None."""
    values = [float(row[monitor]) for row in rows if row.get(monitor) not in (None, "", "NA")]
    values = [value for value in values if math.isfinite(value)]
    return min(values) if values else None
