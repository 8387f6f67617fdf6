"""Template loaders: :class:`XMLString`, :class:`XMLFile` (parsed XML) and :class:`TagLoader`.

XML is read with the standard library's SAX parser (expat) with namespaces on, no
validation and no external entities. Elements and attributes in the template namespace
(:data:`TEMPLATE_NAMESPACE`, usually bound to the prefix ``t``) become template
directives:

- ``t:render="name"`` on any element: the element is rendered by that render method;
- ``<t:slot name="x" default="..."/>``: a :class:`~treadle.web.template.slot`;
- ``<t:attr name="href">...</t:attr>`` inside an element: sets that attribute of the
  enclosing element to the (possibly rendered) content;
- ``<t:transparent>``: an element that contributes only its children.

Other namespace declarations are kept on the element that declares them; the template
namespace's declaration is dropped from the output. Adjacent runs of text are merged into
one string (expat reports text in pieces, at line breaks for example).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import IO, Any
from xml.sax import handler, make_parser
from xml.sax.xmlreader import AttributesNSImpl, Locator

from treadle.web._stan import CDATA, Comment, Flattenable, Tag, slot

__all__ = ["TEMPLATE_NAMESPACE", "TagLoader", "XMLFile", "XMLString"]

#: The namespace of template directives (``xmlns:t="..."``).
TEMPLATE_NAMESPACE = "http://twistedmatrix.com/ns/twisted.web.template/0.1"
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"


class _Namespaces:
    """Prefixes in scope, by namespace URI; one per declaration, chained to its parent."""

    def __init__(self, parent: _Namespaces | None = None) -> None:
        self.parent = parent
        self.prefixes: dict[str | None, str | None] = (
            dict(parent.prefixes) if parent is not None else {_XML_NAMESPACE: "xml"}
        )


class _ToStan(handler.ContentHandler, handler.EntityResolver):
    """SAX events in, a list of tags, text, slots, comments and CDATA out."""

    def __init__(self, sourceFilename: str | None) -> None:
        super().__init__()
        self.sourceFilename = sourceFilename
        self.namespaces = _Namespaces()
        self.in_cdata = False
        self.document: list[Any] = []
        self.current: list[Any] = self.document
        self.stack: list[Any] = []
        self.xmlns_attributes: list[tuple[str, str]] = []
        self.locator: Locator | None = None

    def setDocumentLocator(self, locator: Locator) -> None:
        self.locator = locator

    def _position(self) -> tuple[int | None, int | None]:
        if self.locator is None:
            return None, None
        return self.locator.getLineNumber(), self.locator.getColumnNumber()

    def startPrefixMapping(self, prefix: str | None, uri: str) -> None:
        self.namespaces = _Namespaces(self.namespaces)
        self.namespaces.prefixes[uri] = prefix
        if uri == TEMPLATE_NAMESPACE:
            return
        self.xmlns_attributes.append(("xmlns" if prefix is None else f"xmlns:{prefix}", uri))

    def endPrefixMapping(self, prefix: str | None) -> None:
        parent = self.namespaces.parent
        assert parent is not None, "more prefix mapping ends than starts"
        self.namespaces = parent

    def startElementNS(
        self, name: tuple[str | None, str], qname: str | None, attrs: AttributesNSImpl
    ) -> None:
        namespace, local = name
        line, column = self._position()
        filename = self.sourceFilename
        if namespace == TEMPLATE_NAMESPACE:
            if local == "transparent":
                local = ""
            elif local == "slot":
                default = attrs.get((None, "default"))
                placeholder = slot(attrs[(None, "name")], default, filename, line, column)
                self.stack.append(placeholder)
                self.current.append(placeholder)
                self.current = placeholder.children
                return
        render = None
        attributes: dict[str | bytes, Flattenable] = {}
        for (attribute_namespace, attribute_name), value in attrs.items():
            if attribute_namespace == TEMPLATE_NAMESPACE:
                if attribute_name == "render":
                    render = value
                continue
            prefix = self.namespaces.prefixes.get(attribute_namespace)
            attributes[attribute_name if prefix is None else f"{prefix}:{attribute_name}"] = value
        if namespace == TEMPLATE_NAMESPACE and local == "attr":
            self._start_attr(attributes, Tag("", None, None, render, filename, line, column))
            return
        if self.xmlns_attributes:
            attributes.update(self.xmlns_attributes)
            self.xmlns_attributes = []
        if namespace != TEMPLATE_NAMESPACE and namespace is not None:
            prefix = self.namespaces.prefixes[namespace]
            if prefix is not None:
                local = f"{prefix}:{local}"
        element = Tag(local, attributes, None, render, filename, line, column)
        self.stack.append(element)
        self.current.append(element)
        self.current = element.children

    def _start_attr(self, attributes: Mapping[str | bytes, Flattenable], value: Tag) -> None:
        """``<t:attr name="...">``: the content becomes an attribute of the enclosing tag."""
        if not self.stack:
            raise AssertionError(f"<{{{TEMPLATE_NAMESPACE}}}attr> as top-level element")
        if "name" not in attributes:
            raise AssertionError(f"<{{{TEMPLATE_NAMESPACE}}}attr> requires a name attribute")
        self.stack[-1].attributes[attributes["name"]] = value
        self.stack.append(value)
        self.current = value.children

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:
        self.stack.pop()
        self.current = self.stack[-1].children if self.stack else self.document

    def characters(self, content: str) -> None:
        if self.in_cdata:
            self.stack[-1].append(content)
            return
        current = self.current
        if current and type(current[-1]) is str:
            current[-1] += content
        else:
            current.append(content)

    def processingInstruction(self, target: str, data: str) -> None:
        """Processing instructions are dropped."""

    # The lexical handler's events (set as a property on the parser).

    def startDTD(self, name: str, publicId: str, systemId: str) -> None:
        """A DOCTYPE in a template is dropped (``renderElement`` writes one)."""

    def endDTD(self, *args: object) -> None:
        """See :meth:`startDTD`."""

    def startCDATA(self) -> None:
        self.in_cdata = True
        self.stack.append([])

    def endCDATA(self) -> None:
        self.in_cdata = False
        self.current.append(CDATA("".join(self.stack.pop())))

    def comment(self, content: str) -> None:
        self.current.append(Comment(content))


def _parse(source: IO[Any] | io.StringIO, filename: str | None) -> list[Flattenable]:
    """Parse XML from ``source`` into a template tree."""
    parser = make_parser()
    parser.setFeature(handler.feature_validation, False)
    parser.setFeature(handler.feature_namespaces, True)
    parser.setFeature(handler.feature_external_ges, False)
    parser.setFeature(handler.feature_external_pes, False)
    builder = _ToStan(filename)
    parser.setContentHandler(builder)
    parser.setEntityResolver(builder)
    parser.setProperty(handler.property_lexical_handler, builder)
    parser.parse(source)
    return builder.document


class XMLString:
    """A template parsed from a string of XML (at once, when constructed).

    Args:
        s: The XML, as text or UTF-8 bytes.

    Raises:
        xml.sax.SAXParseException: The XML is not well formed.
    """

    def __init__(self, s: str | bytes) -> None:
        text = s if isinstance(s, str) else s.decode("utf-8")
        self._loadedTemplate: list[Flattenable] = _parse(io.StringIO(text), None)

    def load(self) -> list[Flattenable]:
        """Return the parsed template (the same list each time)."""
        return self._loadedTemplate


class XMLFile:
    """A template parsed from an XML file, read on the first :meth:`load`.

    Args:
        path: A :class:`~treadle.python.filepath.FilePath`, a path (``str`` or
            ``os.PathLike``), or an open binary file.
    """

    def __init__(self, path: Any) -> None:
        self._path = path
        self._loadedTemplate: list[Flattenable] | None = None

    def _load_document(self) -> list[Flattenable]:
        path = self._path
        if hasattr(path, "read"):
            return _parse(path, getattr(path, "name", None))
        opener = getattr(path, "open", None)
        if opener is not None and not isinstance(path, (str, bytes, os.PathLike)):
            with opener() as stream:
                return _parse(stream, getattr(stream, "name", None))
        with open(path, "rb") as stream:
            return _parse(stream, os.fsdecode(path))

    def load(self) -> list[Flattenable]:
        """Return the parsed template, reading the file the first time.

        Raises:
            OSError: The file cannot be read.
            xml.sax.SAXParseException: The XML is not well formed.
        """
        if self._loadedTemplate is None:
            self._loadedTemplate = self._load_document()
        return self._loadedTemplate

    def __repr__(self) -> str:
        return f"<XMLFile of {self._path!r}>"


class TagLoader:
    """A template that is an existing tree (a tag, usually).

    Args:
        tag: What :meth:`load` returns (in a one-item list).
    """

    def __init__(self, tag: Flattenable) -> None:
        self.tag: Flattenable = tag

    def load(self) -> list[Flattenable]:
        """Return ``[tag]``."""
        return [self.tag]
