"""A CGIDirectory of Python CGI scripts (written at start-up, run by this interpreter)."""

import os
import sys

from twisted.internet import reactor
from twisted.web import resource, server, twcgi

SCRIPTS = {
    "env.py": r"""
import os, sys
names = ["GATEWAY_INTERFACE", "SERVER_NAME", "SERVER_PROTOCOL", "REQUEST_METHOD",
         "SCRIPT_NAME", "REQUEST_URI", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR",
         "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_X_THING", "HTTP_PROXY", "PROXY"]
sys.stdout.write("Content-Type: text/plain\r\nX-Script: env\r\n\r\n")
for name in names:
    sys.stdout.write("%s=%s\n" % (name, os.environ.get(name, "-")))
sys.stdout.write("argv=%s\n" % " ".join(sys.argv[1:]))
sys.stdout.write("stdin=%s\n" % sys.stdin.read())
""",
    "status.py": r"""
import sys
sys.stdout.write("Status: 404 Not Here\nContent-Type: text/plain\nX-One: 1\n\nmissing")
""",
    "redirect.py": r"""
print("Location: /elsewhere")
print()
""",
    "broken.py": r"""
import sys
sys.stdout.write("Content-Type: text/plain\n")
sys.stderr.write("something went wrong\n")
sys.exit(2)
""",
}

directory = os.path.abspath("cgi-bin")
os.makedirs(os.path.join(directory, "sub"), exist_ok=True)
for name, body in SCRIPTS.items():
    for where in (directory, os.path.join(directory, "sub")):
        path = os.path.join(where, name)
        with open(path, "w") as f:
            f.write("#!" + sys.executable + "\n" + body)
        os.chmod(path, 0o755)

root = resource.Resource()
root.putChild(b"cgi-bin", twcgi.CGIDirectory(directory))
reactor.listenTCP(int(sys.argv[1]), server.Site(root), interface="127.0.0.1")
reactor.run()
