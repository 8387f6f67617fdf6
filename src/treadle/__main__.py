"""``python -m treadle``: the same as the ``treadle`` command (see :mod:`treadle.cli`)."""

import sys

from treadle.cli import main

if __name__ == "__main__":
    sys.exit(main())
