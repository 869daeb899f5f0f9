"""Training machinery every method uses: the task table, the multi-task steps mixin, the
weighting axis, callbacks and the distribution strategy.

Import the submodules directly (``fermtl_tf.training.steps``, ``.tasks``, ``.weighting``,
``.multitask``, ``.callbacks``, ``.strategy``). Configs and ``run_experiment`` live in
``fermtl_tf.experiments`` (which dispatches to the methods in ``fermtl_tf.methods``).
"""
