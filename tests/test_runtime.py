"""treadle.python.runtime: what a program asks about the platform it runs on."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from treadle.python import runtime
from treadle.python.runtime import Platform, platform, platformType, shortPythonVersion


def test_the_running_platform() -> None:
    assert platform.getType() == platformType == runtime.knownPlatforms[os.name]
    assert platform.isKnown()
    assert platform.isWindows() is (os.name == "nt")
    assert platform.isLinux() is sys.platform.startswith("linux")
    assert platform.isMacOSX() is (sys.platform == "darwin")
    assert platform.supportsThreads()
    assert platform._supportsSymlinks() is (os.name != "nt")  # Twisted suites skip on it


def test_a_described_platform() -> None:
    windows = Platform("nt", "win32")
    assert windows.getType() == "win32" and windows.isWindows() and windows.isWinNT()
    assert not windows.isLinux() and not windows._supportsSymlinks()
    assert Platform("posix", "darwin").isMacOSX()
    unknown = Platform("plan9")
    assert not unknown.isKnown() and unknown.getType() is None


def test_docker_is_read_from_init_control_groups(tmp_path: Path) -> None:
    linux = Platform("posix", "linux")
    groups = tmp_path / "cgroup"
    groups.write_bytes(b"12:cpu:/docker/3601745b3bd5\n11:memory:/\n")
    assert linux.isDocker(str(groups))
    groups.write_bytes(b"0::/init.scope\n")
    assert not linux.isDocker(str(groups))
    assert not linux.isDocker(str(tmp_path / "missing"))
    assert not Platform("posix", "darwin").isDocker(str(groups))


def test_version_and_seconds() -> None:
    assert shortPythonVersion() == ".".join(map(str, sys.version_info[:3]))
    before = time.time()
    assert before <= runtime.seconds() <= time.time()
    assert Platform.seconds is runtime.seconds or Platform().seconds() >= before
