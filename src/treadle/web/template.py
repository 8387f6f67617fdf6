"""Twisted's ``twisted.web.template``: HTML pages from Python trees and XML templates.

Build trees in Python with :data:`tags` (``tags.p("Hello ", tags.b("you"))``) or load them
from XML with :class:`XMLString`/:class:`XMLFile`, where ``t:render``, ``<t:slot>``,
``<t:attr>`` and ``<t:transparent>`` (namespace :data:`TEMPLATE_NAMESPACE`) call render
methods of an :class:`Element`. :func:`flatten`/:func:`flattenString` turn a tree into
bytes, escaped as Twisted escapes them; :func:`renderElement` serves an element as a
response. Renderers may return Deferreds or coroutines anywhere in the tree.

Flattening is several times faster than Twisted's and streams: a page larger than
:data:`~treadle.web._flatten.STREAM_AFTER` is written in chunks that wait for a slow client
instead of collecting in memory.

Differences from Twisted: a slot is filled only by the tags that enclose it (Twisted let a
tag's ``fillSlots`` leak to its later siblings); iterators of any kind (``map``,
``itertools``) and asyncio futures may appear in a tree; :data:`tags` knows the HTML
elements Twisted's list lacks (``main``, ``template``, ``picture``, ...); ``XMLFile``
accepts a plain path without a deprecation warning.
"""

from __future__ import annotations

from treadle.web._element import Element, renderer
from treadle.web._failure_element import FailureElement
from treadle.web._flatten import flatten, flattenString
from treadle.web._loaders import TEMPLATE_NAMESPACE, TagLoader, XMLFile, XMLString
from treadle.web._render import renderElement
from treadle.web._stan import (
    CDATA,
    VALID_HTML_TAG_NAMES,
    CharRef,
    Comment,
    Flattenable,
    Tag,
    slot,
    tags,
)

__all__ = [
    "CDATA",
    "TEMPLATE_NAMESPACE",
    "VALID_HTML_TAG_NAMES",
    "CharRef",
    "Comment",
    "Element",
    "FailureElement",
    "Flattenable",
    "Tag",
    "TagLoader",
    "XMLFile",
    "XMLString",
    "flatten",
    "flattenString",
    "renderElement",
    "renderer",
    "slot",
    "tags",
]
