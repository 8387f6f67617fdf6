"""treadle: Twisted Web's server model (resources, ``NOT_DONE_YET``, ``.rpy`` scripts) on asyncio.

The packages mirror Twisted's, so a Twisted program ports by replacing the word ``twisted``
with ``treadle`` in its imports:

- :mod:`treadle.python` — the ground floor: failures, components and adapters, logging,
  URL paths, file paths, command-line options, thread pools. It imports nothing else of
  treadle but :mod:`treadle.logger` (for :mod:`treadle.python.log`).
- :mod:`treadle.logger` — structured logging, delivered through Python's ``logging``. It
  imports only :mod:`treadle.python.failure`.
- :mod:`treadle.plugin`, :mod:`treadle.plugins` — twistd plugins (``getPlugins``).
- :mod:`treadle.internet` — the programming model on asyncio: the reactor, Deferreds,
  ``task``, protocols and transports, endpoints, TLS, threads and processes. It imports only
  the packages above.
- :mod:`treadle.protocols` — line and length-prefixed protocols, connection policies.
- :mod:`treadle.application` — services, applications, ``.tac`` files and ``strports``.
- :mod:`treadle.cred` — authentication: portals, credentials, checkers. It imports
  :mod:`treadle.internet` and :mod:`treadle.python`.
- :mod:`treadle.web` — HTTP and the resource model. It imports the packages above.
- ``treadle._cli`` — the ``treadle web`` and ``treadle run`` commands, on top of everything.

No module imports from a package above its own, nor from a module that imports it back.

The modules of the per-request path run compiled (mypyc) when the install could build them,
as pure Python otherwise or with ``TREADLE_PURE_PYTHON=1``: ``treadle.compiled`` tells which
(see :mod:`treadle._compiled`).
"""

from treadle._compiled import compiled

__all__ = ["__version__", "compiled"]

#: The version of treadle: the one place it is written (``pyproject.toml`` reads it here,
#: and the ``Server`` header is made from it).
__version__ = "0.1.0"
