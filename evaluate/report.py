"""Write docs/REPRODUCTION.md from the reference tables and fermtl-eval results; the same as ``fermtl-report``.

    python evaluate/report.py [--runs runs] [--readme README.md]
"""

import sys

from fermtl_tf.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
