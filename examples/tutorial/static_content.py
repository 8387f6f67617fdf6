"""Static content: a whole directory of files behind one ``File`` resource.

``File`` turns each URL path into a file below its directory and sends it with a
``Content-Type`` guessed from the extension. A URL naming a directory gets that directory's
``index.html``, or a listing of its entries when there is none.

Run ``python static_content.py [PORT] [DIRECTORY]`` and open http://localhost:8080/.
DIRECTORY defaults to ``public/`` beside this file.
"""

import sys
from pathlib import Path

from treadle.internet import reactor
from treadle.web.server import Site
from treadle.web.static import File

PUBLIC = Path(__file__).resolve().parent / "public"


def make_site(directory=PUBLIC):
    """Return a Site serving every file below ``directory``."""
    return Site(File(str(directory)))


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    directory = sys.argv[2] if len(sys.argv) > 2 else PUBLIC
    reactor.listenTCP(port, make_site(directory))
    reactor.run()
