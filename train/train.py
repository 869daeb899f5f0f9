"""Train an experiment: ``python train/train.py CONFIG.yaml [--set key=value] [--output DIR]``.

The same as the ``fermtl-train`` console script (``fermtl_tf/cli/train.py``).
"""

import sys

from fermtl_tf.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
