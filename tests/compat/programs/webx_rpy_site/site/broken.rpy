from twisted.web.resource import Resource

raise RuntimeError("the script fails")
