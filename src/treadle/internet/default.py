"""Twisted's ``default`` reactor installer: ``default.install()`` keeps treadle's reactor.

The first ``install()`` of any installer succeeds; a second one raises
:class:`~treadle.internet.error.ReactorAlreadyInstalledError`, as in Twisted.
"""

from __future__ import annotations

from treadle.internet._install import install_once

__all__ = ["install"]


def install() -> None:
    """Keep treadle's reactor as the reactor of the process (it is the default everywhere).

    Raises:
        ReactorAlreadyInstalledError: A reactor installer ran already.
    """
    install_once(__name__)
