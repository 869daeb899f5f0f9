"""Evaluate an exported model on a prepared benchmark; the same as the ``fermtl-eval`` command.

    python evaluate/evaluate.py --model DIR --data DIR [--benchmark synthface] [--out DIR]
"""

import sys

from fermtl_tf.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
