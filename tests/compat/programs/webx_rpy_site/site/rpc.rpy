# The XML-RPC howto served from a script: datetime and Binary values, Fault, withRequest,
# introspection, a subhandler.
import datetime

from twisted.web import xmlrpc


class Calendar(xmlrpc.XMLRPC):
    def xmlrpc_next_day(self, when):
        """Return the day after WHEN."""
        return "%s %r" % (type(when).__name__, when + datetime.timedelta(days=1))

    def xmlrpc_epoch(self):
        return datetime.datetime(2000, 1, 2, 3, 4, 5)


class Example(xmlrpc.XMLRPC):
    def xmlrpc_echo(self, *args):
        """Return all passed args."""
        return args

    def xmlrpc_describe(self, value):
        return "%s %r" % (type(value).__name__, getattr(value, "value", None) or getattr(value, "data", None))

    def xmlrpc_blob(self, data):
        return xmlrpc.Binary(data.data[::-1])

    def xmlrpc_when(self):
        return xmlrpc.DateTime(datetime.datetime(2024, 2, 29, 23, 59, 58))

    def xmlrpc_defer(self, x):
        from twisted.internet import defer

        return defer.succeed(x * 3)

    def xmlrpc_fault(self):
        raise xmlrpc.Fault(123, "The fault procedure is faulty.")

    def xmlrpc_nothing(self):
        return None

    @xmlrpc.withRequest
    def xmlrpc_headerValue(self, request, header):
        return request.getHeader(header)


rpc = Example(allowNone=True)
rpc.putSubHandler("cal", Calendar(useDateTime=True))
xmlrpc.addIntrospection(rpc)
resource = rpc
