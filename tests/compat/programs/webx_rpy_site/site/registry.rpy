# Shared state through the Registry every script of the site is given.
from twisted.web.static import Data

from rpyhelpers import Hits, IHits

hits = registry.getComponent(IHits)
if hits is None:
    hits = Hits()
    registry.setComponent(IHits, hits)
hits.count += 1
resource = Data(b"registry hits: %d" % hits.count, "text/plain")
