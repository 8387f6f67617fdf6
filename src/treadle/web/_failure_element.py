"""An HTML rendering of a :class:`~treadle.python.failure.Failure`: :class:`FailureElement`.

:func:`~treadle.web.template.renderElement` writes it when a page fails to render and the
site shows tracebacks (``Site.displayTracebacks``). The markup follows Twisted's: the error
type and message, then one block per frame (file, line, function and three lines of
source, the failing one highlighted), then the error again.
"""

from __future__ import annotations

import linecache
from collections.abc import Iterator
from typing import Any

from treadle.python.failure import Failure
from treadle.web._element import Element, renderer
from treadle.web._loaders import TagLoader, XMLString
from treadle.web._stan import Tag

__all__ = ["FailureElement"]

_NO_BREAK_SPACE = "\N{NO-BREAK SPACE}"


class _SourceLineElement(Element):
    """One line of source code, with its number."""

    def __init__(self, loader: TagLoader | None, number: int, source: str) -> None:
        super().__init__(loader)
        self.number = number
        self.source = source

    @renderer
    def sourceLine(self, request: Any, tag: Tag) -> Tag:
        # Runs of spaces would collapse in HTML: keep the indentation visible.
        return tag(self.source.replace("  ", " " + _NO_BREAK_SPACE))

    @renderer
    def lineNumber(self, request: Any, tag: Tag) -> Tag:
        return tag(str(self.number))


class _SourceFragmentElement(Element):
    """The source lines around a frame's line."""

    def __init__(self, loader: TagLoader | None, frame: tuple[Any, ...]) -> None:
        super().__init__(loader)
        self.frame = frame

    @renderer
    def sourceLines(self, request: Any, tag: Tag) -> Iterator[_SourceLineElement]:
        filename, line = self.frame[1], self.frame[2]
        for number in range(line - 1, line + 2):
            source = linecache.getline(filename, number).rstrip()
            css = "snippetHighlightLine" if number == line else "snippetLine"
            yield _SourceLineElement(TagLoader(tag.clone()(class_=css)), number, source)


class _FrameElement(Element):
    """Where one frame of the traceback is: file, line, function, source."""

    def __init__(self, loader: TagLoader | None, frame: tuple[Any, ...]) -> None:
        super().__init__(loader)
        self.frame = frame

    @renderer
    def filename(self, request: Any, tag: Tag) -> Tag:
        return tag(self.frame[1])

    @renderer
    def lineNumber(self, request: Any, tag: Tag) -> Tag:
        return tag(str(self.frame[2]))

    @renderer
    def function(self, request: Any, tag: Tag) -> Tag:
        return tag(self.frame[0])

    @renderer
    def source(self, request: Any, tag: Tag) -> _SourceFragmentElement:
        return _SourceFragmentElement(TagLoader(tag), self.frame)


class _StackElement(Element):
    """The frames of a traceback, outermost first."""

    def __init__(self, loader: TagLoader | None, stackFrames: list[tuple[Any, ...]]) -> None:
        super().__init__(loader)
        self.stackFrames = stackFrames

    @renderer
    def frames(self, request: Any, tag: Tag) -> list[_FrameElement]:
        return [_FrameElement(TagLoader(tag.clone()), frame) for frame in self.stackFrames]


_TEMPLATE = """\
<div xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
  <style type="text/css">
    div.error { color: red; font-weight: bold; }
    div { font-family: Verdana, Arial, helvetica, sans-serif; }
    div.frame { padding: 1em; border-bottom: thin black dashed; }
    span.function, span.code { font-family: "Courier New", courier, monospace; }
    span.function { font-weight: bold; }
    div.snippet { margin: 0 0 0.5em 1em; background: #FFFFDD; }
    div.snippetHighlightLine { color: red; }
  </style>
  <div class="error">
    <span t:render="type" />: <span t:render="value" />
  </div>
  <div class="stackTrace" t:render="traceback">
    <div class="frame" t:render="frames">
      <div class="location">
        <span t:render="filename" />:<span t:render="lineNumber" /> in
        <span class="function" t:render="function" />
      </div>
      <div class="snippet" t:render="source">
        <div t:render="sourceLines">
          <span class="lineno" t:render="lineNumber" />
          <code class="code" t:render="sourceLine" />
        </div>
      </div>
    </div>
  </div>
  <div class="error">
    <span t:render="type" />: <span t:render="value" />
  </div>
</div>
"""


class FailureElement(Element):
    """Renders a failure: its type, message and traceback, as HTML.

    Args:
        failure: What to show.
        loader: Another template using the same render methods (``type``, ``value``,
            ``traceback``, and inside it ``frames``, ``filename``, ``lineNumber``,
            ``function``, ``source``, ``sourceLines``, ``sourceLine``).
    """

    loader = XMLString(_TEMPLATE)

    def __init__(self, failure: Failure, loader: Any = None) -> None:
        super().__init__(loader)
        self.failure = failure

    @renderer
    def type(self, request: Any, tag: Tag) -> Tag:
        """The error's class, fully qualified."""
        kind = self.failure.type
        module = getattr(kind, "__module__", "")
        name = getattr(kind, "__qualname__", repr(kind))
        return tag(f"{module}.{name}" if module else name)

    @renderer
    def value(self, request: Any, tag: Tag) -> Tag:
        """The error's message."""
        return tag(str(self.failure.value).encode("utf-8"))

    @renderer
    def traceback(self, request: Any, tag: Tag) -> _StackElement:
        """The traceback's frames."""
        return _StackElement(TagLoader(tag), self.failure.frames)
