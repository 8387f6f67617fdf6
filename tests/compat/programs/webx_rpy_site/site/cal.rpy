# An XML-RPC resource of its own with useDateTime=True: dateTime values arrive as datetime.
import datetime

from twisted.web import xmlrpc


class Calendar(xmlrpc.XMLRPC):
    def xmlrpc_next_day(self, when):
        return "%s %r" % (type(when).__name__, when + datetime.timedelta(days=1))


resource = Calendar(useDateTime=True)
