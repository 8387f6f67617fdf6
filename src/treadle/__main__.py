"""``python -m treadle``: the same as the ``treadle`` command (see :mod:`treadle._cli`)."""

import sys

from treadle._cli import main

if __name__ == "__main__":
    sys.exit(main())
