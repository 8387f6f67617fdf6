"""Running other programs: getProcessOutput, getProcessValue, getProcessOutputAndValue."""

import sys

from twisted.internet import defer, reactor, utils
from twisted.internet.endpoints import serverFromString
from twisted.web import resource, server

PYTHON = sys.executable


class Run(resource.Resource):
    isLeaf = True

    @defer.inlineCallbacks
    def answer(self, request):
        code = request.args.get(b"code", [b"print('hi')"])[0].decode()
        output = yield utils.getProcessOutput(PYTHON, ["-c", code])
        status = yield utils.getProcessValue(PYTHON, ["-c", "import sys; sys.exit(3)"])
        out, err, value = yield utils.getProcessOutputAndValue(
            PYTHON, ["-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(2)"]
        )
        request.write(b"output: %r\nstatus: %d\n" % (output, status))
        request.write(b"both: %r %r %d\n" % (out, err, value))
        request.finish()

    def render_GET(self, request):
        self.answer(request)
        return server.NOT_DONE_YET


class Noisy(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        # getProcessOutput fails when the program writes to stderr.
        d = utils.getProcessOutput(PYTHON, ["-c", "import sys; sys.stderr.write('oops')"])

        def failed(failure):
            kind = "an IOError" if failure.check(IOError) else failure.type.__name__
            request.write(b"failed with " + kind.encode())
            request.finish()

        d.addErrback(failed)
        return server.NOT_DONE_YET


class Environment(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        d = utils.getProcessOutput(
            PYTHON,
            ["-c", "import os; print(os.environ.get('GREETING'), os.getcwd())"],
            env={"GREETING": "bonjour"},
            path="/",
        )
        d.addCallback(lambda out: (request.write(out), request.finish()))
        return server.NOT_DONE_YET


root = resource.Resource()
root.putChild(b"run", Run())
root.putChild(b"noisy", Noisy())
root.putChild(b"env", Environment())
serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1").listen(server.Site(root))
reactor.run()
