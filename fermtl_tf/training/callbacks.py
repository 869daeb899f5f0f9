"""The callbacks of every experiment: resume, checkpoints, TensorBoard, CSV history, LR.

Layout of an experiment's output directory::

    output_dir/
      config.yaml            resolved config (written by run_experiment)
      backup/                BackupAndRestore state: a rerun resumes after the last epoch
      checkpoints/last.keras the model after the latest epoch
      checkpoints/best.keras the model with the lowest val_loss (when validating)
      logs/                  TensorBoard event files (if tensorboard is installed)
      history.csv            one row per epoch: every logged loss, metric and learning_rate

With several workers (``strategy: multi_worker``) only the chief writes this folder; the
other workers make the same saves, at the same moments, into a scratch folder
(:class:`WorkerBackupAndRestore`).
"""

import importlib.util
import json
import warnings
from pathlib import Path

import keras


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimiser's current learning rate to the epoch logs as ``learning_rate``.

    It must come before the CSV and TensorBoard callbacks, which read the same logs.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """A non-chief worker's ``BackupAndRestore`` (the Keras multi-worker convention).

    It resumes from the *chief's* backup (``restore_dir``, on a folder every worker
    sees), so that all workers start at the same epoch with the same weights, and it
    writes its own backups into ``backup_dir`` in its scratch folder: every worker must
    save, since reading a metric's variable (``on_read``) is a collective over all
    workers, but only the chief's files are kept. ``restore_dir=None`` starts fresh (a
    ``--restart``, while the chief empties its folder).
    """

    def __init__(self, backup_dir, restore_dir):
        super().__init__(backup_dir=str(backup_dir))
        self.restore_dir = None if restore_dir is None else str(restore_dir)

    def on_train_begin(self, logs=None):
        if self.restore_dir is None:
            return
        chief = keras.callbacks.BackupAndRestore(self.restore_dir, delete_checkpoint=False)
        chief.set_model(self.model)
        chief.on_train_begin(logs)


def resumed_epoch(output_dir):
    """The epoch a rerun of the experiment in ``output_dir`` starts at: the one after the
    last epoch ``BackupAndRestore`` backed up (0 for a fresh run)."""
    metadata = Path(output_dir) / "backup" / "training_metadata.json"
    if not metadata.is_file():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def tensorboard_available():
    """TensorFlow 2.21 no longer depends on the ``tensorboard`` package; it is optional."""
    return importlib.util.find_spec("tensorboard") is not None


def make_callbacks(output_dir, validation=False, tensorboard=None, best=None, backup=None):
    """Callbacks writing into ``output_dir`` (see the module docstring for the layout).

    ``tensorboard=None`` writes TensorBoard logs when the ``tensorboard`` package is
    installed and warns otherwise (the CSV history holds the same numbers). The CSV
    history is appended to when a backup exists (a resumed run), so it keeps one row per
    epoch across interruptions; a fresh run starts a new file. ``best`` is the best
    ``val_loss`` of the epochs before a resume (None: none yet), so that the best-model
    checkpoint is replaced only by a better model than every earlier epoch's. ``backup``
    replaces the ``BackupAndRestore`` on ``output_dir/backup`` (a non-chief worker's
    :class:`WorkerBackupAndRestore`).

    Order matters for a kill at any moment: the history row and the checkpoints of an
    epoch are written before ``BackupAndRestore`` records the epoch as done, so a resume
    redoes (identically, with deterministic inputs) an epoch whose backup was not
    written, and never skips one whose checkpoint was not.
    """
    if tensorboard is None:
        tensorboard = tensorboard_available()
        if not tensorboard:
            warnings.warn("the tensorboard package is not installed: no TensorBoard logs "
                          "(pip install tensorboard); history.csv has every logged value",
                          stacklevel=2)
    output_dir = Path(output_dir)
    backup_dir = output_dir / "backup"
    resuming = backup_dir.exists()
    (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    callbacks = [
        LearningRateLogger(),
        keras.callbacks.CSVLogger(str(output_dir / "history.csv"), append=resuming),
        keras.callbacks.ModelCheckpoint(str(output_dir / "checkpoints" / "last.keras")),
    ]
    if validation:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(output_dir / "checkpoints" / "best.keras"), monitor="val_loss",
            save_best_only=True, initial_value_threshold=best))
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(output_dir / "logs")))
    callbacks.append(backup or keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir)))
    return callbacks
