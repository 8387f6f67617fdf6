"""State the .rpy scripts share through the site's Registry (an importable module, so the
interface is one object however often a script runs)."""

from zope.interface import Attribute, Interface, implementer


class IHits(Interface):
    count = Attribute("how many times the registry script ran")


@implementer(IHits)
class Hits:
    def __init__(self):
        self.count = 0
