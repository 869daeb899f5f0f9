"""Prepare a dataset: the same as the ``fermtl-prep`` command (see data_prep/README.md).

    python data_prep/prepare.py --list
    python data_prep/prepare.py manifest --csv my_data/labels.csv --out prepared/my_data
"""

import sys

from fermtl_tf.cli.prep import main

if __name__ == "__main__":
    sys.exit(main())
