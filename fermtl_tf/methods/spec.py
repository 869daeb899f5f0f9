"""``MethodSpec``: what a method folder declares so the trainer can run it.

A method lives in ``fermtl_tf/methods/<name>/``; its ``__init__.py`` defines
``SPEC = MethodSpec(...)`` and imports nothing heavier than its config dataclasses, so
that ``fermtl-train --check`` and ``--list-methods`` never import TensorFlow. Everything
that needs TensorFlow (the builder and the optional hooks) is named by a
``"module:attribute"`` string and imported only when a run starts.

Hooks (each optional, each ``"module:function"``):

* ``compile_kwargs(model, config, steps_per_epoch) -> dict``: extra ``model.compile``
  arguments (e.g. FERSNet's discriminator optimiser);
* ``callbacks(model, config, output_dir) -> list``: extra Keras callbacks;
* ``serving_model(model) -> keras.Model``: what ``export`` serves (default: the model);
* ``export_metadata(model, data) -> dict``: merged into ``fermtl_export.json``;
* ``export_endpoints(archive, model, input_size, normalization)``: adds endpoints beside
  ``serve`` to the SavedModel's ``keras.export.ExportArchive`` (FERSNet's synthesis);
* ``train_dataset(config, first_epoch) -> tf.data.Dataset``: the training input, when the
  method needs its own batches (identity-aware tuples) instead of the configured sources'
  batch dicts (None: use them after all); ``first_epoch`` is the epoch a resumed run
  starts at. A finite dataset is one epoch (read once per epoch); ``(dataset, steps)``
  is an endless stream, read with one iterator, ``steps`` batches an epoch, starting
  where a run resumed at ``first_epoch`` stands (FERSNet's target pairs);
* ``prepare_data(config, source)``: writes the data a run derives from other data before
  any manifest is read (FERSNet's FES-DA syntheses of the training faces, by the
  ``init_from`` model); ``source`` names the config in ConfigErrors. It must return at
  once when there is nothing to write (a rerun, a k-fold round resumed).
"""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    Args:
        name: the value of ``method: {name: ...}`` in a config.
        config: dataclass validating the ``method:`` section (its first field ``name``).
        builder: ``"module:function"``; ``function(config, data)`` returns the compiled-to-be
            ``keras.Model`` for an ``ExperimentConfig`` and a ``DataInfo``.
        tasks: the tasks (keys of the task table) the method can train.
        summary: one line for ``fermtl-train --list-methods``.
        paper: the paper it reproduces (file name under shared/papers or a citation).
        variants: ``{section: {name: dataclass}}`` the method adds to the ``sharing``,
            ``coupling`` or ``weighting`` sections (e.g. Hu et al.'s ``stacked`` sharing).
        losses: names of the method's own losses beyond its tasks (``ada``,
            ``distribution_matching``, ...), which ``weighting.weights`` may set.
        check: TF-free ``check(config)`` yielding ``(key, message)`` for each cross-field
            rule the config breaks (run by config validation; the first is reported).
        smoke_config: a tiny config (raw dict) whose data folders are ``"$SYNTHFACE"``:
            what ``tests/conformance`` trains, saves, resumes and exports for the method.
    """

    name: str
    config: type
    builder: str
    tasks: tuple
    summary: str
    paper: str = ""
    variants: dict = dataclasses.field(default_factory=dict)
    losses: tuple = ()
    check: object = None
    smoke_config: dict = None
    compile_kwargs: str | None = None
    callbacks: str | None = None
    serving_model: str | None = None
    export_metadata: str | None = None
    train_dataset: str | None = None
    export_endpoints: str | None = None
    prepare_data: str | None = None

    def resolve(self, hook):
        """The callable named by ``builder`` or a hook field (None when the hook is unset)."""
        target = getattr(self, hook)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)
