"""Training: YAML configs, distribution strategy, the multi-task model base and callbacks.

Import the submodules directly (``fermtl_tf.training.config``, ``.multitask``, ...);
``run_experiment`` lives in ``fermtl_tf.training.experiment``.
"""
