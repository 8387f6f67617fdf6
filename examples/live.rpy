# A live page: the server pushes the time once a second over Server-Sent Events, and echoes
# what you type over a WebSocket.
#
# GET live.rpy is the page; live.rpy/clock is its event stream and live.rpy/echo its
# WebSocket. The echo is written against twisted.web.websocket's API. The clock uses
# treadle.web.sse, which is treadle's own (Twisted has no event streams), so this script
# runs under treadle only.
#
# The clock numbers its ticks with the event id. When the connection drops, the browser
# reconnects by itself and says which tick it saw last (Last-Event-ID): the stream goes
# on counting from there and says "welcome back". A client that reads too slowly skips
# ticks rather than piling them up: only the latest time matters.

import html
import time

from twisted.internet import task
from twisted.web.resource import Resource
from twisted.web.websocket import WebSocketResource

from treadle.web.sse import EventSource


class Clock(EventSource):
    def startStream(self, stream):
        resumed = stream.lastEventID
        ticks = [int(resumed) if resumed and resumed.isdigit() else 0]
        if resumed is not None:
            stream.send(f"Welcome back: you had seen tick {resumed}.", event="resumed")

        def tick():
            if stream.paused:  # the client is behind: this tick would be stale on arrival
                return
            ticks[0] += 1
            stream.send(time.strftime("%H:%M:%S"), event="tick", id=str(ticks[0]))

        loop = task.LoopingCall(tick)
        stream.notifyFinish().addBoth(lambda _: loop.running and loop.stop())
        loop.start(1.0)  # the first tick is now


class Echo:
    """One WebSocket connection: every message goes back to where it came from."""

    def negotiationStarted(self, transport):
        self.transport = transport

    def negotiationFinished(self):
        pass

    def textMessageReceived(self, message):
        self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data):
        self.transport.sendBytesMessage(data)

    def pongReceived(self, payload):
        pass

    def connectionLost(self, reason):
        pass


class EchoFactory:
    def buildProtocol(self, request):
        return Echo()


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Live</title>
  <link rel="stylesheet" href="style.css">
</head>
<body data-clock="{clock}" data-echo="{echo}" data-ticks="0">
  <h1>Live</h1>
  <h2>The time, pushed by the server</h2>
  <p>An <code>EventSource</code> reads <code>live.rpy/clock</code>, an event stream that
    sends a <code>tick</code> event every second. Event stream:
    <strong id="clock-state">connecting</strong></p>
  <p style="font-size: 2.5rem; margin: 0.5rem 0"><output id="clock">--:--:--</output></p>
  <p id="resumed" class="note" hidden></p>
  <ul id="ticks"></ul>
  <h2>An echo</h2>
  <p>A <code>WebSocket</code> to <code>live.rpy/echo</code> sends back every message.
    WebSocket: <strong id="echo-state">connecting</strong></p>
  <form id="echo-form">
    <input id="echo-text" name="text" value="hello" autocomplete="off">
    <button>Send</button>
  </form>
  <ul id="echoes"></ul>
  <p><a href=".">Back to the examples</a></p>
  <script>
    "use strict";
    const body = document.body;
    const show = (id, text) => {{ document.getElementById(id).textContent = text; }};
    const item = (list, text, keep) => {{
      const li = document.createElement("li");
      li.textContent = text;
      list.prepend(li);
      while (list.children.length > keep) list.lastElementChild.remove();
    }};

    const clock = new EventSource(new URL(body.dataset.clock, location.href));
    clock.onopen = () => show("clock-state", "open");
    clock.onerror = () => show("clock-state",
      clock.readyState === EventSource.CONNECTING ? "reconnecting" : "closed");
    clock.addEventListener("tick", (event) => {{
      document.getElementById("clock").value = event.data;
      item(document.getElementById("ticks"), `tick ${{event.lastEventId}} at ${{event.data}}`, 5);
      body.dataset.ticks = Number(body.dataset.ticks) + 1;
    }});
    clock.addEventListener("resumed", (event) => {{
      const note = document.getElementById("resumed");
      note.textContent = event.data;
      note.hidden = false;
    }});

    const echoUrl = new URL(body.dataset.echo, location.href);
    echoUrl.protocol = echoUrl.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    const connect = () => {{
      socket = new WebSocket(echoUrl);
      socket.onopen = () => show("echo-state", "open");
      socket.onmessage = (event) => item(document.getElementById("echoes"), event.data, 10);
      socket.onclose = () => {{
        show("echo-state", "closed; reconnecting");
        setTimeout(connect, 2000);
      }};
    }};
    connect();
    document.getElementById("echo-form").addEventListener("submit", (event) => {{
      event.preventDefault();
      const text = document.getElementById("echo-text");
      if (socket.readyState === WebSocket.OPEN && text.value) socket.send(text.value);
      text.value = "";
    }});
  </script>
</body>
</html>
"""


class LivePage(Resource):
    def render_GET(self, request):
        # Where this page is, without a trailing slash: its children hang below it.
        here = "/" + "/".join(s.decode() for s in request.prepath if s)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return PAGE.format(
            clock=html.escape(here + "/clock"), echo=html.escape(here + "/echo")
        ).encode()


resource = LivePage()
resource.putChild(b"clock", Clock(retry=1000))
resource.putChild(b"echo", WebSocketResource(EchoFactory()))
