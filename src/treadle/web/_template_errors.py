"""The errors of template rendering, under the names ``twisted.web.error`` gives them.

They live here, not in :mod:`treadle.web.error`, so that the template modules depend on
nothing but this file; :mod:`treadle.web.error` re-exports them for code that catches
``twisted.web.error.UnfilledSlot`` and friends.
"""

from __future__ import annotations

import traceback
from typing import Any

__all__ = [
    "FlattenerError",
    "MissingRenderMethod",
    "MissingTemplateLoader",
    "RenderError",
    "UnexposedMethodError",
    "UnfilledSlot",
    "UnsupportedType",
]

#: A root longer than this is shown by its two ends in a flattening traceback.
_ROOT_SHOWN = 40


class RenderError(Exception):
    """Base class of the errors a template's renderers can meet."""


class MissingRenderMethod(RenderError):
    """A tag asked for a render method its element does not expose.

    Args:
        element: The element that was asked.
        renderName: The missing renderer's name.
    """

    def __init__(self, element: object, renderName: str) -> None:
        super().__init__(element, renderName)
        self.element = element
        self.renderName = renderName

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name!r}: {self.element!r} had no render method named {self.renderName!r}"


class MissingTemplateLoader(RenderError):
    """An element was rendered without a ``loader``.

    Args:
        element: The element without a loader.
    """

    def __init__(self, element: object) -> None:
        super().__init__(element)
        self.element = element

    def __repr__(self) -> str:
        return f"{type(self).__name__!r}: {self.element!r} had no loader"


class UnexposedMethodError(Exception):
    """A method was looked up that was never exposed (for instance with ``@renderer``)."""


class UnfilledSlot(Exception):
    """A slot was flattened with no value filled in and no default."""


class UnsupportedType(Exception):
    """Something that cannot be flattened (a number, None, an arbitrary object) was met."""


class FlattenerError(Exception):
    """Flattening failed; the message shows where in the tree, then the Python traceback.

    Args:
        exception: The error raised while flattening.
        roots: The objects being flattened when it happened, outermost first.
        traceback: The Python traceback as :func:`traceback.extract_tb` gives it.
    """

    def __init__(self, exception: BaseException, roots: list[Any], traceback: Any) -> None:
        self._exception = exception
        self._roots = roots
        self._traceback = traceback
        super().__init__(exception, roots, traceback)

    @staticmethod
    def _formatRoot(obj: object) -> str:
        """Describe one root of the flattening stack in a line."""
        if isinstance(obj, (bytes, str)):
            if len(obj) > _ROOT_SHOWN:
                if isinstance(obj, str):
                    return ascii(obj[:20] + "<...>" + obj[-20:])
                return ascii(obj[:20] + b"<...>" + obj[-20:])
            return ascii(obj)
        tag_name = getattr(obj, "tagName", None)
        if isinstance(tag_name, (str, bytes)) and hasattr(obj, "fillSlots"):
            name = tag_name if isinstance(tag_name, str) else tag_name.decode("ascii", "replace")
            filename = getattr(obj, "filename", None)
            if filename is None:
                return "Tag <" + name + ">"
            line = getattr(obj, "lineNumber", 0)
            column = getattr(obj, "columnNumber", 0)
            return f'File "{filename}", line {line}, column {column}, in "{name}"'
        return ascii(obj)

    def __repr__(self) -> str:
        roots = ""
        if self._roots:
            roots = "  " + "\n  ".join(self._formatRoot(r) for r in self._roots) + "\n"
        where = ""
        if self._traceback:
            lines = [
                line
                for entry in traceback.format_list(self._traceback)
                for line in entry.splitlines()
            ]
            where = "\n".join(lines) + "\n"
        error = self._exception
        return f"Exception while flattening:\n{roots}{where}{type(error).__name__}: {error}\n"

    __str__ = __repr__


# Shown as the public module's names (in tracebacks and failure pages).
for _error in (
    FlattenerError,
    MissingRenderMethod,
    MissingTemplateLoader,
    RenderError,
    UnexposedMethodError,
    UnfilledSlot,
    UnsupportedType,
):
    _error.__module__ = "treadle.web.error"
