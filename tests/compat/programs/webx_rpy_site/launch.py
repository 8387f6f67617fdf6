"""Start `twistd -n web ARGS` under Twisted; ported by the import rule, `treadle web ARGS`.

(`treadle run web` does not exist: the README maps `twistd -n web` to `treadle web`.)
"""

import os
import sys

import twisted as implementation

if implementation.__name__ == "twisted":
    TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    command = [sys.executable, "-c", TWISTD, "-n", "web", *sys.argv[1:]]
else:
    command = [sys.executable, "-m", "treadle", "web", *sys.argv[1:]]
os.execv(sys.executable, command)
