"""Turning a document tree into bytes: :func:`flatten` and :func:`flattenString`.

The output is byte for byte what ``twisted.web.template`` writes for the same tree. The way
there differs, for speed:

- One loop walks the tree depth first with an explicit stack of ``(iterator, end, slots,
  render factory, raw, node)`` frames; a tag whose attributes are plain text is written at
  once and costs one frame for its children. Twisted makes a generator per node and passes
  every piece of markup through two function calls; this loop is several times faster.
- Nothing asynchronous is made unless the tree holds something asynchronous: a Deferred
  that has already fired, or a coroutine that finished at once, is read on the spot. Only a
  pending one suspends the walk (its frames stay on the stack) until it fires.
- Bytes collect in a list joined when written. :func:`flattenString` joins once at the end.
  :func:`flatten` hands chunks to ``write`` as the tree is walked; when ``write`` is a
  treadle request's ``write`` and the page has grown past :data:`STREAM_AFTER`, the walk
  waits (``await request.drain()``) whenever the connection's send buffer is over its
  high-water mark, so a huge page never sits whole in memory.

Attribute values are flattened into a buffer of their own and escaped once when the value
ends: escaping ``&<>"`` character by character commutes with concatenation, so this is the
same as Twisted's escaping of every write inside the value (a tag inside an attribute comes
out escaped, its own text escaped twice, as in Twisted).

Slots are scoped to the tag that fills them. Twisted keeps the values of a tag's
``fillSlots`` visible to the *siblings* after it (a leak, not a feature); here a slot only
sees the tags that enclose it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from inspect import iscoroutine
from traceback import extract_tb
from types import GeneratorType
from typing import Any, Final, Union

from treadle.internet.defer import Deferred
from treadle.python.failure import Failure
from treadle.web._escaping import (
    attributeEscapingDoneOutside,
    escape_attribute,
    escapedCDATA,
    escapedComment,
    escapeForContent,
    writeWithAttributeEscaping,
)
from treadle.web._stan import CDATA, CharRef, Comment, Flattenable, Tag, slot, voidElements
from treadle.web._template_errors import FlattenerError, UnfilledSlot, UnsupportedType
from treadle.web.iweb import IRenderable

__all__ = [
    "BUFFER_SIZE",
    "STREAM_AFTER",
    "attributeEscapingDoneOutside",
    "escapeForContent",
    "escapedCDATA",
    "escapedComment",
    "flatten",
    "flattenString",
    "writeWithAttributeEscaping",
]

#: Twisted's chunk size for ``write`` (bytes); kept as the name programs may read.
BUFFER_SIZE: Final = 2**16

#: Pieces collected before a chunk is handed to ``write``. Counting pieces (a list's length
#: is free) rather than bytes keeps the hot loop from summing lengths; at the ~10 bytes a
#: piece of a typical page this is chunks of tens of KiB.
FLUSH_PIECES: Final = 4096

#: Bytes a page may reach before flattening checks the connection's send buffer. Below it
#: a page goes out as one response with a Content-Length (treadle holds a request's writes
#: until the loop turns); above it the page streams and waits for slow clients.
STREAM_AFTER: Final = 256 * 1024

_WritePause = Callable[[int], "Deferred[Any] | None"]


# -- tag names ------------------------------------------------------------------------------

_VOID: Final = frozenset(name.encode("ascii") for name in voidElements)
#: tagName -> (b"<name", b"</name>", is void); names come from code and templates, so the
#: cache stays small, and it stops growing past this size if a program invents names.
_TAG_BYTES: dict[str | bytes, tuple[bytes, bytes, bool]] = {}
_TAG_BYTES_MAX: Final = 4096


def _tag_bytes(name: str | bytes) -> tuple[bytes, bytes, bool]:
    """Return the opening, closing and void-ness of the tag called ``name``."""
    known = _TAG_BYTES.get(name)
    if known is not None:
        return known
    raw = name.encode("ascii") if isinstance(name, str) else name
    made = (b"<" + raw, b"</" + raw + b">", raw in _VOID)
    if len(_TAG_BYTES) < _TAG_BYTES_MAX:
        _TAG_BYTES[name] = made
    return made


# -- the walk ---------------------------------------------------------------------------------

#: Slot values in scope: the innermost tag's dict and the chain outward.
_Slots = Union[tuple[dict[str, Any], "_Slots"], None]  # noqa: UP007 - a recursive alias
#: (iterator, end, slots, render factory, raw text, node): ``end`` is written when the
#: iterator is exhausted (None, closing bytes, or :data:`_ATTRIBUTE_END`); ``raw`` is true at
#: the top level of an attribute value, whose text is escaped when the value ends.
_Frame = tuple[Iterator[Any], Any, _Slots, Any, bool, Any]

_ATTRIBUTE_END: Final = object()


class _Attribute:
    """Marker on a tag's frame: flatten one attribute value."""

    __slots__ = ("name", "value")

    def __init__(self, name: bytes, value: Flattenable) -> None:
        self.name = name
        self.value = value


class _Body:
    """Marker on a tag's frame: the attributes are written; close the start tag."""

    __slots__ = ("close", "tag", "void")

    def __init__(self, tag: Tag, close: bytes, void: bool) -> None:
        self.tag = tag
        self.close = close
        self.void = void


def _slot_value(item: slot, slots: _Slots) -> Flattenable:
    """Return the value of the nearest enclosing fill of ``item``, or its default."""
    name = item.name
    while slots is not None:
        values, slots = slots
        if name in values:
            return values[name]
    if item.default is not None:
        return item.default
    raise UnfilledSlot(name)


#: How deep :func:`_plain_attribute` follows slots and transparent tags before giving up.
_PLAIN_DEPTH: Final = 8


def _plain_start(tag: Tag, slots: _Slots) -> bytes | None:
    """The attributes of ``tag`` as bytes, or None when one needs the general walk."""
    parts = []
    for name, value in tag.attributes.items():
        data = value.encode() if type(value) is str else _plain_attribute(value, slots, 0)
        if data is None:
            return None
        key = name.encode("ascii") if isinstance(name, str) else name
        parts.append(b" " + key + b'="' + escape_attribute(data) + b'"')
    return b"".join(parts)


def _plain_attribute(value: Flattenable, slots: _Slots, depth: int) -> bytes | None:
    """The unescaped bytes of an attribute value made only of text, slots and transparent
    tags (``<t:attr>``), or None for anything else (tags, renderers, Deferreds...).

    Reading these has no side effect, so doing it ahead of the general walk changes nothing
    but the speed: ``<t:attr name="href">/item/<t:slot name="id"/></t:attr>`` in a row
    template is then written at once.
    """
    kind = type(value)
    if kind is str:
        return value.encode()  # type: ignore[no-any-return]
    if kind is bytes:
        return value  # type: ignore[no-any-return]
    if depth >= _PLAIN_DEPTH:
        return None
    if kind is slot:
        try:
            resolved = _slot_value(value, slots)
        except UnfilledSlot:
            return None  # the general walk raises it, with the path to it
        return _plain_attribute(resolved, slots, depth + 1)
    if kind is Tag and not value.tagName and value.render is None:
        values = value.slotData
        return _plain_sequence(value.children, slots if values is None else (values, slots), depth)
    if kind is list or kind is tuple:
        return _plain_sequence(value, slots, depth)
    if kind is CharRef:
        return b"&#%d;" % (value.ordinal,)
    return None


def _plain_sequence(values: Any, slots: _Slots, depth: int) -> bytes | None:
    parts = []
    for value in values:
        data = _plain_attribute(value, slots, depth + 1)
        if data is None:
            return None
        parts.append(data)
    return b"".join(parts)


class _Waiter:
    """Resumes a flattener when the Deferred it waits on fires (or records a quick result)."""

    __slots__ = ("context", "flattener", "node", "outcome", "waiting")

    def __init__(self, flattener: _Flattener, node: object, context: _Frame | None) -> None:
        self.flattener = flattener
        self.node = node
        self.context = context
        self.outcome: tuple[object] | None = None
        self.waiting = False

    def __call__(self, result: object) -> object:
        if self.waiting:
            self.flattener.resume(self, result)
        else:
            self.outcome = (result,)
        # Passed on unchanged, so the Deferred's own chain is left as it was (as Twisted).
        return result


class _Flattener:
    """One flattening of one tree; see the module docstring.

    Args:
        request: Passed to renderers and to renderables' ``render``.
        root: The tree.
        write: Receives the chunks; None collects them for :meth:`result`.
        pause: Called with the bytes written so far after each chunk; returns a Deferred to
            wait for before going on, or None.
    """

    __slots__ = (
        "_buffers",
        "_done",
        "_out",
        "_pause",
        "_request",
        "_stack",
        "_stopped",
        "_waiter",
        "_write",
        "_written",
    )

    def __init__(
        self,
        request: object,
        root: Flattenable,
        write: Callable[[bytes], object] | None,
        pause: _WritePause | None = None,
    ) -> None:
        self._request = request
        self._stack: list[_Frame] = [(iter((root,)), None, None, None, False, root)]
        self._buffers: list[list[bytes]] = []
        self._out: list[bytes] = []
        self._write = write
        self._pause = pause
        self._written = 0
        self._waiter: _Waiter | None = None
        self._stopped = False
        self._done: Deferred[None] = Deferred()

    def run(self) -> Deferred[None]:
        """Start; the Deferred fires once all is written (at once if nothing waits)."""
        self._step(None)
        return self._done

    def result(self) -> bytes:
        """Everything flattened (when ``write`` was None)."""
        return b"".join(self._out)

    def stop(self) -> None:
        """Give up at the next chunk boundary (the reader went away); the Deferred fires."""
        self._stopped = True

    def resume(self, waiter: _Waiter, result: object) -> None:
        """Go on after the Deferred ``waiter`` waited on fired with ``result``."""
        self._waiter = None
        if isinstance(result, Failure):
            self._step(result, waiter.node)
            return
        if waiter.context is not None:
            _, _, slots, factory, raw, _ = waiter.context
            self._stack.append((iter((result,)), None, slots, factory, raw, waiter.node))
        self._step(None)

    def _step(self, failure: Failure | None, node: object = None) -> None:
        try:
            finished = self._walk(failure, node)
            if finished:
                self._stack.clear()
                if self._write is not None and self._out and not self._stopped:
                    self._write(b"".join(self._out))
                    self._out.clear()
        except Exception as error:  # every error goes to the Deferred
            self._stack.clear()
            self._done.errback(Failure(error))
            return
        if finished:
            self._done.callback(None)

    def _walk(self, failure: Failure | None, node: object) -> bool:
        """Flatten until done (True) or until something must be waited for (False)."""
        stack = self._stack
        tag_bytes = _TAG_BYTES
        item: Any = node
        try:
            if failure is not None:
                raise failure.value.with_traceback(failure.tb)
            while stack:
                out = self._out
                frame = stack[-1]
                iterator, end, slots, factory, raw, _ = frame
                for item in iterator:
                    kind = type(item)
                    if kind is str:
                        if raw:
                            out.append(item.encode())
                        else:
                            out.append(
                                item.replace("&", "&amp;")
                                .replace("<", "&lt;")
                                .replace(">", "&gt;")
                                .encode()
                            )
                        continue
                    if kind is Tag and item.render is None and item.tagName:
                        values = item.slotData
                        inner = slots if values is None else (values, slots)
                        head = _plain_start(item, inner) if item.attributes else b""
                        if head is not None:
                            children = item.children
                            opened, close, void = tag_bytes.get(item.tagName) or _tag_bytes(
                                item.tagName
                            )
                            if children:
                                out.append(opened + head + b">")
                                stack.append((iter(children), close, inner, factory, False, item))
                                break
                            out.append(opened + head + (b" />" if void else b">" + close))
                            continue
                    if kind is slot:
                        value = _slot_value(item, slots)
                        if type(value) is str:
                            if raw:
                                out.append(value.encode())
                            else:
                                out.append(
                                    value.replace("&", "&amp;")
                                    .replace("<", "&lt;")
                                    .replace(">", "&gt;")
                                    .encode()
                                )
                            continue
                        stack.append((iter((value,)), None, slots, factory, raw, item))
                        break
                    if self._visit(item, frame, out):
                        break
                else:
                    stack.pop()
                    if end is None:
                        continue
                    if end is _ATTRIBUTE_END:
                        self._end_attribute()
                        continue
                    out.append(end)
                    if (
                        len(out) >= FLUSH_PIECES
                        and self._write is not None
                        and not self._buffers
                        and self._flush_and_pace()
                    ):
                        return False
                    continue
                if self._waiter is not None:
                    return False
                if self._stopped:
                    return True
            return True
        except Exception as error:
            roots = [frame[5] for frame in stack]
            roots.append(item)
            raise FlattenerError(error, roots, extract_tb(error.__traceback__)) from error

    def _push(self, values: Any, frame: _Frame, node: object, **changes: Any) -> None:
        _, _, slots, factory, raw, _ = frame
        self._stack.append(
            (
                iter(values),
                changes.get("end"),
                changes.get("slots", slots),
                changes.get("factory", factory),
                changes.get("raw", raw),
                node,
            )
        )

    def _visit(self, item: Any, frame: _Frame, out: list[bytes]) -> bool:
        """Flatten ``item`` (the general case); True when a frame was pushed or we wait."""
        if isinstance(item, (bytes, str)):
            data = item.encode() if isinstance(item, str) else bytes(item)
            out.append(data if frame[4] else escapeForContent(data))
            return False
        if isinstance(item, slot):
            self._push((_slot_value(item, frame[2]),), frame, item)
            return True
        if isinstance(item, Tag):
            return self._visit_tag(item, frame, out)
        if isinstance(item, (list, tuple, GeneratorType)):
            self._push(item, frame, item)
            return True
        if isinstance(item, CDATA):
            out.append(b"<![CDATA[" + escapedCDATA(item.data) + b"]]>")
            return False
        if isinstance(item, Comment):
            out.append(b"<!--" + escapedComment(item.data) + b"-->")
            return False
        if isinstance(item, CharRef):
            out.append(b"&#%d;" % (item.ordinal,))
            return False
        if isinstance(item, _Attribute):
            out.append(b" " + item.name + b'="')
            self._buffers.append(out)
            self._out = []
            self._push((item.value,), frame, item.value, end=_ATTRIBUTE_END, raw=True)
            return True
        if isinstance(item, _Body):
            return self._visit_body(item, frame, out)
        if isinstance(item, Deferred):
            return self._wait(item, frame)
        if iscoroutine(item):
            return self._wait(Deferred.fromCoroutine(item), frame)
        if IRenderable.providedBy(item):
            self._push((item.render(self._request),), frame, item, factory=item)
            return True
        if asyncio.isfuture(item):
            return self._wait(Deferred.fromFuture(item), frame)
        if isinstance(item, Iterator):
            self._push(item, frame, item)
            return True
        raise UnsupportedType(item)

    def _visit_tag(self, tag: Tag, frame: _Frame, out: list[bytes]) -> bool:
        slots = frame[2] if tag.slotData is None else (tag.slotData, frame[2])
        if tag.render is not None:
            factory = frame[3]
            if factory is None:
                raise ValueError(
                    f'Tag wants to be rendered by method "{tag.render}" '
                    "but is not contained in any IRenderable"
                )
            copy = tag.clone(False)
            copy.render = None
            method = factory.lookupRenderMethod(tag.render)
            self._push((method(self._request, copy),), frame, tag, slots=slots)
            return True
        if not tag.tagName:
            self._push(tag.children, frame, tag, slots=slots)
            return True
        opened, close, void = _tag_bytes(tag.tagName)
        out.append(opened)
        markers: list[object] = [
            _Attribute(name.encode("ascii") if isinstance(name, str) else name, value)
            for name, value in tag.attributes.items()
        ]
        markers.append(_Body(tag, close, void))
        self._push(markers, frame, tag, slots=slots)
        return True

    def _visit_body(self, body: _Body, frame: _Frame, out: list[bytes]) -> bool:
        tag = body.tag
        if tag.children or not body.void:
            out.append(b">")
            self._push(tag.children, frame, tag, end=body.close, raw=False)
            return True
        out.append(b" />")
        return False

    def _end_attribute(self) -> None:
        value = b"".join(self._out)
        self._out = self._buffers.pop()
        self._out.append(escape_attribute(value) + b'"')

    def _wait(self, deferred: Deferred[Any], frame: _Frame) -> bool:
        """Go on with ``deferred``'s result: now if it has one, else when it fires."""
        node = deferred
        waiter = _Waiter(self, node, frame)
        deferred.addBoth(waiter)
        outcome = waiter.outcome
        if outcome is not None:
            result = outcome[0]
            if isinstance(result, Failure):
                raise result.value.with_traceback(result.tb)
            self._push((result,), frame, node)
            return True
        waiter.waiting = True
        self._waiter = waiter
        self._flush()
        return True

    def _flush(self) -> None:
        """Hand what the top-level buffer holds to ``write``."""
        write = self._write
        if write is None:
            return
        out = self._buffers[0] if self._buffers else self._out
        if out:
            chunk = b"".join(out)
            out.clear()
            self._written += len(chunk)
            write(chunk)

    def _flush_and_pace(self) -> bool:
        """Write a chunk; True when the walk must wait (``self._waiter`` set) or stop."""
        self._flush()
        if self._stopped:
            self._stack.clear()
            return False
        pause = self._pause
        if pause is None:
            return False
        waiting = pause(self._written)
        if waiting is None:
            return False
        waiter = _Waiter(self, None, None)
        waiting.addBoth(waiter)
        if waiter.outcome is not None:
            return False
        waiter.waiting = True
        self._waiter = waiter
        return True


def _request_pacer(write: Callable[[bytes], object]) -> _WritePause | None:
    """Backpressure for ``write`` when it is a treadle request's ``write`` (else None)."""
    request = getattr(write, "__self__", None)
    if request is None or not hasattr(request, "drain"):
        return None
    if not hasattr(request, "asyncio_transport"):
        return None

    def pause(written: int) -> Deferred[Any] | None:
        if written < STREAM_AFTER:
            return None
        transport = request.asyncio_transport
        if transport is None:
            return None
        if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
            return None
        return Deferred.fromFuture(asyncio.ensure_future(request.drain()))

    return pause


def flatten(request: object, root: Flattenable, write: Callable[[bytes], object]) -> Deferred[None]:
    """Write the bytes of ``root`` to ``write``, chunk by chunk, as it is flattened.

    Args:
        request: Passed to every renderer and renderable met (may be None).
        root: Text (escaped), bytes (escaped too), a :class:`~treadle.web.template.Tag`,
            a slot, CDATA, Comment, CharRef, a list, tuple, generator or iterator of
            these, a Deferred or coroutine whose result is one, or an
            :class:`~treadle.web.iweb.IRenderable` such as an Element.
        write: Called with each chunk. When it is a treadle request's ``write``, a page
            that grows past :data:`STREAM_AFTER` waits for a slow client to read.

    Returns:
        A Deferred that fires with None when all is written (already fired when nothing
        in the tree had to be waited for), or fails with
        :class:`~treadle.web.error.FlattenerError` (wrapping the error, with the path in
        the tree where it happened: an :class:`~treadle.web.error.UnsupportedType` for a
        number or None, :class:`~treadle.web.error.UnfilledSlot`, a renderer's error).
    """
    return _Flattener(request, root, write, _request_pacer(write)).run()


def flattenString(request: object, root: Flattenable) -> Deferred[bytes]:
    """Flatten ``root`` into one bytes string (UTF-8).

    Args:
        request: Passed to every renderer and renderable met (may be None).
        root: As for :func:`flatten`.

    Returns:
        A Deferred firing with the bytes (already fired when nothing had to be waited
        for), or failing as :func:`flatten`'s does.
    """
    flattener = _Flattener(request, root, None)
    done: Deferred[Any] = flattener.run()
    return done.addCallback(lambda _: flattener.result())
