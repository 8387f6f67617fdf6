"""Elements: objects that render a template and expose render methods to it.

A render method is an ordinary method marked with ``@renderer``; only marked methods can
be named by a template's ``t:render`` (a template cannot call an arbitrary method).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

from zope.interface import implementer

from treadle.web._stan import Flattenable, Tag
from treadle.web._template_errors import (
    MissingRenderMethod,
    MissingTemplateLoader,
    UnexposedMethodError,
)
from treadle.web.iweb import IRenderable

__all__ = ["Element", "Expose", "renderer"]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., object])
_NO_DEFAULT: Any = object()


class TemplateLoader(Protocol):
    """What an element's ``loader`` is (an ``ITemplateLoader``, as the checker sees it)."""

    def load(self) -> Any:
        """Return the template's tree."""


class Expose:
    """A mark put on methods, so that only marked methods can be looked up by name.

    Calling it with functions marks them (it returns the first, so it works as a
    decorator); :meth:`get` returns the marked method of an instance.
    """

    def __call__(self, f: _F, /, *funcObjs: Callable[..., object]) -> _F:
        """Mark ``f`` and ``funcObjs`` as exposed; return ``f``."""
        for function in (f, *funcObjs):
            exposed: list[Expose] = getattr(function, "exposedThrough", [])
            exposed.append(self)
            function.exposedThrough = exposed  # type: ignore[attr-defined]
        return f

    @overload
    def get(self, instance: object, methodName: str) -> Callable[..., Any]: ...

    @overload
    def get(self, instance: object, methodName: str, default: _T) -> Callable[..., Any] | _T: ...

    def get(self, instance: object, methodName: str, default: object = _NO_DEFAULT) -> object:
        """Return the method ``methodName`` of ``instance`` if this mark exposes it.

        Args:
            instance: Whose method.
            methodName: Its name.
            default: Returned when there is no such exposed method.

        Raises:
            UnexposedMethodError: There is none and no ``default`` was given.
        """
        method = getattr(instance, methodName, None)
        if self not in getattr(method, "exposedThrough", ()):
            if default is _NO_DEFAULT:
                raise UnexposedMethodError(self, methodName)
            return default
        return method


renderer = Expose()
renderer.__doc__ = """Mark a method of an :class:`Element` as a render method.

A tag with ``t:render="name"`` (or ``render="name"`` in Python) is replaced by what
``element.name(request, tag)`` returns, where ``tag`` is a copy of the tag without its
``render``::

    class Greeting(Element):
        loader = XMLString('<p xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1"'
                           ' t:render="hello" />')

        @renderer
        def hello(self, request, tag):
            return tag("Hello, world")

The result may be anything flattenable: a tag, text, a list, a generator, a Deferred or a
coroutine.
"""


@implementer(IRenderable)
class Element:
    """A piece of a page: a template (its ``loader``) and the render methods it names.

    Elements nest: an element's renderer may return other elements, and each is rendered
    with its own template and renderers.

    Args:
        loader: The template (an :class:`~treadle.web.iweb.ITemplateLoader` such as
            :class:`~treadle.web.template.XMLString`); when None, the class attribute
            ``loader`` is used.

    Attributes:
        loader: The template loader (None: rendering raises
            :class:`~treadle.web.error.MissingTemplateLoader`).
    """

    loader: TemplateLoader | None = None

    def __init__(self, loader: TemplateLoader | None = None) -> None:
        if loader is not None:
            self.loader = loader

    def lookupRenderMethod(self, name: str) -> Callable[[Any, Tag], Flattenable]:
        """Return the render method ``name`` (a method marked with ``@renderer``).

        Raises:
            MissingRenderMethod: There is no such marked method.
        """
        method = renderer.get(self, name, None)
        if method is None:
            raise MissingRenderMethod(self, name)
        return method

    def render(self, request: Any) -> Flattenable:
        """Return the template's tree, to be flattened with this element's renderers.

        Raises:
            MissingTemplateLoader: The element has no loader.
        """
        loader = self.loader
        if loader is None:
            raise MissingTemplateLoader(self)
        return loader.load()
