"""treadle: Twisted Web's server model (resources, ``NOT_DONE_YET``, ``.rpy`` scripts) on asyncio.

``from treadle import reactor`` gives the reactor; the rest lives in modules named as in
Twisted (``treadle.resource``, ``treadle.server``, ``treadle.static``, ...).
"""

from treadle._reactor import reactor

__all__ = ["__version__", "reactor"]

__version__ = "0.1.0"
