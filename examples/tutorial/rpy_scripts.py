"""rpy scripts: a directory where ``.rpy`` files run instead of being sent.

An ``.rpy`` file is a Python script that assigns a resource to the global ``resource``.
Serving a directory with ``File`` and mapping the ``.rpy`` extension to ``ResourceScript``
makes a request for ``hello.rpy`` run the script and render what it assigned; every other
file is sent as usual. The scripts live in the ``rpy_scripts/`` directory beside this
module: ``hello.rpy`` uses treadle's imports, ``uptime.rpy`` Twisted's, unchanged.

Run ``python rpy_scripts.py [PORT]`` and open http://localhost:8080/hello.rpy?name=you,
or serve the directory the way ``twistd -n web --path`` does, with no Python of your own:
``treadle web --path examples/tutorial/rpy_scripts``.
"""

import sys
from pathlib import Path

from treadle.internet import reactor
from treadle.web.script import ResourceScript
from treadle.web.server import Site
from treadle.web.static import File

SCRIPTS = Path(__file__).resolve().parent / "rpy_scripts"


def make_site(directory=SCRIPTS):
    """Return a Site serving ``directory``, running the ``.rpy`` files in it."""
    root = File(str(directory))
    root.processors = {".rpy": ResourceScript}
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
