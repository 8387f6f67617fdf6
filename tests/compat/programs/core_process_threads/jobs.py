"""The "Using processes" and "Using threads" howtos, run by task.react.

Processes: spawnProcess with a ProcessProtocol, an extra child fd (childFDs), a chosen
environment and working directory, signalProcess, ProcessDone vs ProcessTerminated, and
ProcessExitedAlready. Threads: deferToThread (value and exception), deferToThreadPool,
callMultipleInThread, blockingCallFromThread (value and failure).
(twisted.python.threadable.isInIOThread is left out: treadle has only getThreadID.)
"""

import os
import signal
import sys
import threading

from twisted.internet import defer, error, protocol, task, threads
from twisted.python.threadpool import ThreadPool

CHILD = r"""
import os, sys
sys.stdout.write("cwd=%s foo=%s path_set=%s\n" % (
    os.path.basename(os.getcwd()), os.environ.get("FOO"), "PATH" in os.environ))
sys.stdout.flush()
data = sys.stdin.read()
os.write(3, b"fd3:" + data[::-1].encode())
os.close(3)
sys.stderr.write("err:%d\n" % len(data))
sys.exit(int(sys.argv[1]))
"""

SLEEPER = r"""
import sys, time
sys.stdout.write("ready\n")
sys.stdout.flush()
time.sleep(30)
"""


class Recorder(protocol.ProcessProtocol):
    def __init__(self, text=b""):
        self.text = text
        self.data = {}
        self.lost = set()
        self.order = []
        self.ended = defer.Deferred()
        self.ready = defer.Deferred()

    def connectionMade(self):
        self.order.append(f"connectionMade pid>0={self.transport.pid > 0}")
        if self.text:
            self.transport.write(self.text[:3])
            self.transport.writeToChild(0, self.text[3:])
            self.transport.closeStdin()

    def childDataReceived(self, fd, data):
        self.data[fd] = self.data.get(fd, b"") + data
        if b"ready" in data and not self.ready.called:
            self.ready.callback(None)
        # the base class would send fd 1 and 2 on to outReceived/errReceived
        protocol.ProcessProtocol.childDataReceived(self, fd, data)

    def outReceived(self, data):
        self.order.append("outReceived") if "outReceived" not in self.order else None

    def childConnectionLost(self, fd):
        self.lost.add(fd)
        protocol.ProcessProtocol.childConnectionLost(self, fd)

    def processExited(self, reason):
        self.exited = reason

    def processEnded(self, reason):
        self.order.append("processEnded")
        self.ended.callback([reason])  # a Failure given to callback would errback


def describe(reason):
    v = reason.value
    return (
        f"{reason.type.__name__} exitCode={v.exitCode!r} signal={v.signal!r} "
        f"status_is_int={isinstance(v.status, int)}"
    )


@defer.inlineCallbacks
def processes(reactor):
    print("-- processes")
    os.makedirs("workdir", exist_ok=True)
    for code in (0, 3):
        p = Recorder(b"hello child")
        transport = reactor.spawnProcess(
            p,
            sys.executable,
            [sys.executable, "-c", CHILD, str(code)],
            env={"FOO": "bar"},
            path="workdir",
            childFDs={0: "w", 1: "r", 2: "r", 3: "r"},
        )
        print("transport pid matches:", transport.pid == p.transport.pid)
        [reason] = yield p.ended
        print("ended:", describe(reason))
        print("exited:", describe(p.exited))
        print("fd1:", p.data.get(1))
        print("fd2:", p.data.get(2))
        print("fd3:", p.data.get(3))
        print(
            "lost fds:", sorted(p.lost), "order:", p.order[0], p.order[-1], "outReceived" in p.order
        )
        print("pid after end:", transport.pid)
        try:
            transport.signalProcess("TERM")
        except error.ProcessExitedAlready:
            print("signal after exit: ProcessExitedAlready")

    p = Recorder()
    transport = reactor.spawnProcess(
        p, sys.executable, [sys.executable, "-c", SLEEPER], env=os.environ
    )
    yield p.ready
    transport.signalProcess("TERM")
    [reason] = yield p.ended
    print("terminated:", describe(reason), "SIGTERM:", reason.value.signal == signal.SIGTERM)

    p = Recorder()
    transport = reactor.spawnProcess(
        p, sys.executable, [sys.executable, "-c", SLEEPER], env=os.environ
    )
    yield p.ready
    transport.signalProcess(signal.SIGKILL)
    [reason] = yield p.ended
    print("killed:", describe(reason), "SIGKILL:", reason.value.signal == signal.SIGKILL)

    p = Recorder()
    try:
        reactor.spawnProcess(p, "/nonexistent/program", ["x"], env={})
        [reason] = yield p.ended
        print("missing program ended:", describe(reason))
    except Exception as e:
        print("missing program raised:", type(e).__name__)


def work(x):
    if x < 0:
        raise ValueError("negative: %d" % x)
    return x * x, threading.current_thread() is threading.main_thread()


@defer.inlineCallbacks
def thread_work(reactor):
    print("-- threads")
    print("reactor thread is IO thread:", threading.current_thread() is threading.main_thread())
    r = yield threads.deferToThread(work, 7)
    print("deferToThread:", r)
    try:
        yield threads.deferToThread(work, -1)
    except ValueError as e:
        print("deferToThread raised:", e)

    pool = ThreadPool(minthreads=1, maxthreads=1, name="own")
    pool.start()
    try:
        r = yield threads.deferToThreadPool(reactor, pool, work, 3)
        print("deferToThreadPool:", r)
    finally:
        pool.stop()

    done = defer.Deferred()
    seen = []

    def note(x):
        seen.append((x, threading.current_thread() is threading.main_thread()))
        if len(seen) == 3:
            reactor.callFromThread(done.callback, None)

    threads.callMultipleInThread([(note, (1,), {}), (note, (2,), {}), (note, (3,), {})])
    yield done
    print("callMultipleInThread:", seen)

    def in_thread():
        out = []
        out.append(threads.blockingCallFromThread(reactor, lambda: defer.succeed("from reactor")))
        out.append(
            threads.blockingCallFromThread(reactor, task.deferLater, reactor, 0, lambda: "later")
        )
        try:
            threads.blockingCallFromThread(reactor, defer.fail, KeyError("no key"))
        except KeyError as e:
            out.append(f"KeyError {e}")
        try:
            threads.blockingCallFromThread(reactor, int, "x")
        except ValueError:
            out.append("ValueError")
        return out

    r = yield threads.deferToThread(in_thread)
    print("blockingCallFromThread:", r)


@defer.inlineCallbacks
def main(reactor):
    yield processes(reactor)
    yield thread_work(reactor)
    print("done")


if __name__ == "__main__":
    task.react(main)
