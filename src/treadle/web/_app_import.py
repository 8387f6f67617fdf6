"""Finding an application by name: ``package.module:app`` for ``--wsgi`` and ``--asgi``."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_application"]


def import_application(name: str, kind: str, word: str) -> Any:
    """Import the callable ``name`` names.

    Args:
        name: ``"package.module:attr"`` (the attribute may be dotted) or
            ``"package.module.attr"``.
        kind: What it must be, for the error message (``"WSGI"``, ``"ASGI"``).
        word: What the attribute is called in the message's examples (``"application"``).

    Raises:
        ValueError: ``name`` has neither form, or the module has no such attribute.
        ImportError: The module cannot be imported.
        TypeError: The attribute is not callable.
    """
    module_name, colon, attribute = name.partition(":")
    if not colon:
        module_name, _, attribute = name.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(
            f"expected 'package.module:{word}' or 'package.module.{word}', not {name!r}"
        )
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(found):
        article = "an" if kind[:1] in "AEIOU" else "a"
        raise TypeError(f"{name!r} is {type(found).__name__}, not {article} {kind} application")
    return found
