"""The document tree templates are made of: :class:`Tag`, :class:`slot`, :class:`CDATA`,
:class:`Comment`, :class:`CharRef`, and the :data:`tags` factory (``tags.div(...)``).

A tree is plain Python objects: tags hold a name, an attribute dict and a list of children,
and children may be anything :func:`~treadle.web.template.flatten` accepts (text, bytes,
other tags, lists, generators, slots, Deferreds, coroutines, renderable elements).

Classes use ``__slots__``: a rendered page creates thousands of tags (a renderer usually
clones the tag it is given), and slotted instances are smaller and quicker to read.
"""

from __future__ import annotations

import warnings
from inspect import iscoroutine, isgenerator
from typing import Any

__all__ = [
    "CDATA",
    "VALID_HTML_TAG_NAMES",
    "CharRef",
    "Comment",
    "Tag",
    "slot",
    "tags",
    "voidElements",
]

#: Anything :func:`~treadle.web.template.flatten` accepts (recursive, hence ``Any``).
Flattenable = Any


class slot:
    """A named place in a template, filled by :meth:`Tag.fillSlots` on an enclosing tag.

    Args:
        name: The key :meth:`Tag.fillSlots` fills it with.
        default: Flattened when no enclosing tag fills the slot; None makes an unfilled
            slot an :class:`~treadle.web.error.UnfilledSlot` error.
        filename: The template file it was parsed from, if any.
        lineNumber: Its line in that file, if parsed.
        columnNumber: Its column in that file, if parsed.
    """

    __slots__ = ("children", "columnNumber", "default", "filename", "lineNumber", "name")

    def __init__(
        self,
        name: str,
        default: Flattenable | None = None,
        filename: str | None = None,
        lineNumber: int | None = None,
        columnNumber: int | None = None,
    ) -> None:
        self.name = name
        self.default = default
        self.filename = filename
        self.lineNumber = lineNumber
        self.columnNumber = columnNumber
        #: Tags written inside ``<t:slot>`` in a template (kept; never rendered).
        self.children: list[Tag] = []

    def __repr__(self) -> str:
        return (
            f"slot(name={self.name!r}, children={self.children!r}, default={self.default!r}, "
            f"filename={self.filename!r}, lineNumber={self.lineNumber!r}, "
            f"columnNumber={self.columnNumber!r})"
        )


class Tag:
    """An element: a name, attributes and children.

    Calling a tag adds children and attributes and returns the same tag, so trees read
    like markup: ``tags.ul(tags.li("one"), tags.li("two"), class_="list")``.

    Args:
        tagName: The element's name (``"div"``); an empty name makes a *transparent* tag
            whose children are rendered without any markup of its own.
        attributes: Attribute values by name; values may be anything flattenable (slots
            and tags included: they are escaped for the attribute).
        children: The contents.
        render: The name of the render method that renders this tag (see
            :class:`~treadle.web.template.Element`).
        filename: The template file it was parsed from, if any.
        lineNumber: Its line in that file, if parsed.
        columnNumber: Its column in that file, if parsed.

    Attributes:
        slotData: The slot values :meth:`fillSlots` gave this tag (None until then).
    """

    __slots__ = (
        "attributes",
        "children",
        "columnNumber",
        "filename",
        "lineNumber",
        "render",
        "slotData",
        "tagName",
    )

    def __init__(
        self,
        tagName: bytes | str,
        attributes: dict[bytes | str, Flattenable] | None = None,
        children: list[Flattenable] | None = None,
        render: str | None = None,
        filename: str | None = None,
        lineNumber: int | None = None,
        columnNumber: int | None = None,
    ) -> None:
        self.tagName = tagName
        self.attributes: dict[bytes | str, Flattenable] = {} if attributes is None else attributes
        self.children: list[Flattenable] = [] if children is None else children
        self.render = render
        self.filename = filename
        self.lineNumber = lineNumber
        self.columnNumber = columnNumber
        self.slotData: dict[str, Flattenable] | None = None

    def fillSlots(self, **slots: Flattenable) -> Tag:
        """Give values to the slots inside this tag (and return the tag).

        A slot takes the value of the nearest enclosing tag that fills it.

        Returns:
            This tag, so that a renderer can ``return tag.fillSlots(name=...)``.
        """
        if self.slotData is None:
            self.slotData = {}
        self.slotData.update(slots)
        return self

    def __call__(self, *children: Flattenable, **kw: Flattenable) -> Tag:
        """Append ``children`` and set the attributes ``kw``; return this tag.

        A trailing underscore is dropped from an attribute name, for names that are Python
        keywords (``class_="x"``). The keyword ``render`` names the render method instead
        of setting an attribute.

        Raises:
            TypeError: ``render`` is not a ``str``.
        """
        self.children.extend(children)
        for name, value in kw.items():
            if name[-1] == "_":
                name = name[:-1]
            if name == "render":
                if not isinstance(value, str):
                    raise TypeError(f'Value for "render" attribute must be str, got {value!r}')
                self.render = value
            else:
                self.attributes[name] = value
        return self

    def clone(self, deep: bool = True) -> Tag:
        """Return a copy of this tag.

        Args:
            deep: Copy the children (tags, lists) too; when False the new tag gets a new
                list holding the same children. Attributes and slot values are always
                copied deeply.

        Returns:
            The copy; a generator or coroutine child is shared, with a
            ``DeprecationWarning`` (it can run only once).
        """
        # Built field by field (no __init__ call, no empty dict comprehensions): renderers
        # clone a tag per row, so this is on the hot path of most pages.
        copy = Tag.__new__(Tag)
        copy.tagName = self.tagName
        children = self.children
        copy.children = [_clone(child, True) for child in children] if deep else children[:]
        attributes = self.attributes
        copy.attributes = (
            {key: _clone(value, True) for key, value in attributes.items()} if attributes else {}
        )
        copy.render = self.render
        copy.filename = self.filename
        copy.lineNumber = self.lineNumber
        copy.columnNumber = self.columnNumber
        values = self.slotData
        copy.slotData = (
            {key: _clone(value, True) for key, value in values.items()} if values else None
        )
        return copy

    def clear(self) -> Tag:
        """Remove all children; return this tag."""
        self.children = []
        return self

    def __repr__(self) -> str:
        extra = ""
        if self.attributes:
            extra += f", attributes={self.attributes!r}"
        if self.children:
            extra += f", children={self.children!r}"
        return f"Tag({self.tagName!r}{extra})"


def _clone(obj: Flattenable, deep: bool) -> Flattenable:
    """Copy one child of a tag for :meth:`Tag.clone` (lists and tuples become lists)."""
    kind = type(obj)
    if kind is str or kind is slot:
        return obj
    if kind is Tag:
        return obj.clone(deep)
    clone = getattr(obj, "clone", None)
    if clone is not None:
        return clone(deep)
    if isinstance(obj, (list, tuple)):
        return [_clone(item, deep) for item in obj]
    if isgenerator(obj) or iscoroutine(obj):
        what = "generator" if isgenerator(obj) else "coroutine"
        warnings.warn(
            f"Cloning a Tag which contains a {what} is unsafe, since the {what} can run only "
            "once; it is shared between the copies",
            DeprecationWarning,
            stacklevel=3,
        )
    return obj


class CDATA:
    """A ``<![CDATA[...]]>`` section (``]]>`` inside it is split so that it stays one).

    Args:
        data: The text between the markers.
    """

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"CDATA({self.data!r})"


class Comment:
    """A ``<!-- ... -->`` comment (``-->`` inside it is escaped so that it stays one).

    Args:
        data: The text between the markers.
    """

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Comment({self.data!r})"


class CharRef:
    """A numeric character reference (``&#9731;``), to write any character in ASCII.

    Args:
        ordinal: The character's code point.
    """

    __slots__ = ("ordinal",)

    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal

    def __repr__(self) -> str:
        return f"CharRef({self.ordinal:d})"


#: Elements that cannot have content: written ``<br />`` when they have no children.
voidElements = (
    "img",
    "br",
    "hr",
    "base",
    "meta",
    "link",
    "param",
    "area",
    "input",
    "col",
    "basefont",
    "isindex",
    "frame",
    "command",
    "embed",
    "keygen",
    "source",
    "track",
    "wbs",
)

#: The names :data:`tags` knows: Twisted's list plus the HTML elements it lacks
#: (``main``, ``template``, ``picture``, ``dialog``, ...).
VALID_HTML_TAG_NAMES = frozenset(
    """a abbr acronym address applet area article aside audio b base basefont bdi bdo big
    blockquote body br button canvas caption center cite code col colgroup command data
    datalist dd del details dfn dialog dir div dl dt em embed fieldset figcaption figure font
    footer form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input
    ins isindex kbd keygen label legend li link main map mark menu meta meter nav noframes
    noscript object ol optgroup option output p param picture pre progress q rp rt ruby s samp
    script search section select slot small source span strike strong style sub summary sup
    table tbody td template textarea tfoot th thead time title tr track tt u ul var video
    wbr""".split()  # noqa: SIM905 - a list of 130 quoted names reads worse
)


class _TagFactory:
    """``tags.div`` is ``Tag("div")``: a new tag for each attribute read.

    A trailing underscore is dropped (``tags.del_``, ``tags.object_``); ``tags.transparent``
    is a tag with no name (only its children are rendered).
    """

    def __getattr__(self, tagName: str) -> Tag:
        if tagName == "transparent":
            return Tag("")
        name = tagName.rstrip("_")
        if name not in VALID_HTML_TAG_NAMES:
            raise AttributeError(f"unknown tag {name!r}")
        return Tag(name)


#: The factory of tags: ``tags.a(href="/")`` (raises AttributeError for unknown names).
tags = _TagFactory()
