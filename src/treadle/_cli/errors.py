"""How the ``treadle`` command fails: its two errors and their exit statuses.

Every module of the command raises these, so they live below all of them; :mod:`treadle._cli.main`
re-exports them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "StartupError", "UsageError"]

#: Exit status for a malformed command line (as argparse uses).
EXIT_USAGE: Final = 2
#: Exit status when the system refused: a missing file, a port in use, an import error.
EXIT_FAILURE: Final = 1


class UsageError(Exception):
    """The command line is malformed; reported in one line, exit status 2."""


class StartupError(Exception):
    """The server could not start (file, port, certificate, import); exit status 1."""
