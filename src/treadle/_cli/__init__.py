"""The ``treadle`` command: ``treadle web --path DIR`` and its options.

The top floor of treadle: it turns a command line into settings, a
:class:`~treadle.web.server.Site` and listening ports, and runs them (one process, or
supervised workers). Nothing imports it but ``python -m treadle`` and the console script.

May import: every other package of treadle.
"""

from treadle._cli.main import main

__all__ = ["main"]
