"""Adapters and componentized objects on :mod:`zope.interface` (``twisted.python.components``).

Interfaces are zope's own: declare them with ``zope.interface.Interface`` and
``Attribute``, implement them with ``@implementer``, exactly as Twisted programs do. This
module adds Twisted's helpers on top::

    from zope.interface import Attribute, Interface, implementer
    from treadle.python.components import registerAdapter
    from treadle.web.server import Session

    class ICounter(Interface):
        value = Attribute("An int value which counts up once per page view.")

    @implementer(ICounter)
    class Counter:
        def __init__(self, session):
            self.value = 0

    registerAdapter(Counter, Session, ICounter)

    counter = ICounter(request.getSession())  # the same Counter for the same session

:func:`registerAdapter` records factories in :data:`globalRegistry`, a zope
``AdapterRegistry`` that calling an interface consults (this module adds a hook to
``zope.interface.interface.adapter_hooks`` when it is imported). Registering a second factory
for the same pair raises :class:`ValueError`, as in Twisted, unless :data:`ALLOW_DUPLICATES`
is set: a ``.rpy`` script that registers an adapter on every request without ``cache()``
fails loudly on its second request instead of silently keeping the first adapter.

Difference from Twisted, on purpose: :class:`Componentized` keys its components by the
interface object rather than by the interface's dotted name, which cannot collide and costs
no name lookup; ``removeComponent`` returns the interfaces, as Twisted's does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from zope.interface import declarations, implementer
from zope.interface import interface as zi_interface
from zope.interface.adapter import AdapterRegistry

__all__ = [
    "ALLOW_DUPLICATES",
    "Adapter",
    "CannotAdapt",
    "Componentized",
    "ReprableComponentized",
    "getAdapterFactory",
    "getRegistry",
    "globalRegistry",
    "proxyForInterface",
    "registerAdapter",
]

#: An adapter factory: called with the original object, returns the adapter (or None when it
#: cannot adapt that object).
AdapterFactory = Callable[[Any], Any]

#: Set to True to let :func:`registerAdapter` replace an existing registration instead of
#: raising (Twisted's module flag of the same name, for code that re-registers on reload).
ALLOW_DUPLICATES = False

#: What calling an interface raises when nothing adapts the object (zope raises TypeError).
CannotAdapt: Final = TypeError

#: The registry :func:`registerAdapter` fills and interface calls consult.
globalRegistry: Final = AdapterRegistry()


def getRegistry() -> AdapterRegistry:
    """Return :data:`globalRegistry`, the registry adapters are registered in."""
    return globalRegistry


def _as_interface(spec: Any) -> Any:
    """A class stands for what its instances provide; an interface stands for itself."""
    if isinstance(spec, zi_interface.InterfaceClass):
        return spec
    return declarations.implementedBy(spec)


def registerAdapter(
    adapterFactory: AdapterFactory,
    origInterface: Any,
    *interfaceClasses: Any,
) -> None:
    """Register ``adapterFactory`` to adapt ``origInterface`` to each of ``interfaceClasses``.

    Args:
        adapterFactory: Called with the original object; returns the adapter.
        origInterface: A class (its instances, and those of its subclasses, are adapted)
            or an interface (anything providing it is adapted).
        *interfaceClasses: The interfaces the adapter provides.

    Raises:
        ValueError: A factory is already registered for one of the pairs (unless the module
            flag :data:`ALLOW_DUPLICATES` is true), or no interface was given.
    """
    if not interfaceClasses:
        raise ValueError("registerAdapter needs at least one interface to adapt to")
    required = _as_interface(origInterface)
    for iface in interfaceClasses:
        existing = globalRegistry.registered([required], iface)
        if existing is not None and not ALLOW_DUPLICATES:
            raise ValueError(
                f"an adapter ({existing!r}) was already registered from "
                f"{getattr(origInterface, '__qualname__', origInterface)!s} to "
                f"{iface.__name__}"
            )
    for iface in interfaceClasses:
        globalRegistry.register([required], iface, "", adapterFactory)


def getAdapterFactory(fromInterface: Any, toInterface: Any, default: Any) -> Any:
    """Return the factory adapting ``fromInterface`` to ``toInterface``, or ``default``.

    Args:
        fromInterface: A class or an interface.
        toInterface: The interface wanted.
        default: Returned when no factory is registered.
    """
    return globalRegistry.lookup1(_as_interface(fromInterface), toInterface, default=default)


def _adapter_hook(iface: Any, obj: object) -> Any:
    factory = globalRegistry.lookup1(declarations.providedBy(obj), iface)
    return None if factory is None else factory(obj)


# Calling an interface asks each hook in turn; ours answers from globalRegistry.
zi_interface.adapter_hooks.append(_adapter_hook)


class Adapter:
    """A base for adapters: keeps the adapted object as ``original``.

    Attributes:
        temporaryAdapter: When true, :class:`Componentized` does not remember the adapter.
        multiComponent: When true, :class:`Componentized` also stores the adapter under the
            other interfaces it provides.
    """

    temporaryAdapter = False
    multiComponent = True

    def __init__(self, original: Any) -> None:
        self.original = original

    def __conform__(self, interface: Any) -> Any:
        """Let the adapted object answer for interfaces this adapter does not provide."""
        conform = getattr(self.original, "__conform__", None)
        return None if conform is None else conform(interface)

    def isuper(self, iface: Any, adapter: Any) -> Any:
        """Forward to the adapted object's ``isuper`` (Twisted's old cooperative adaptation)."""
        return self.original.isuper(iface, adapter)


class Componentized:
    """An object that keeps one component per interface, made by adapters on first request.

    ``getComponent(ICounter)`` (or ``ICounter(obj)``) builds the registered adapter once and
    returns that same instance afterwards, so state kept on the adapter lives as long as the
    componentized object -- how a ``Session`` stores a counter.
    """

    def __init__(self) -> None:
        self._adapterCache: dict[Any, Any] = {}

    def locateAdapterClass(self, klass: type, interfaceClass: Any, default: Any) -> Any:
        """Return the adapter factory from ``klass`` to ``interfaceClass``, or ``default``."""
        return getAdapterFactory(klass, interfaceClass, default)

    def setAdapter(self, interfaceClass: Any, adapterClass: AdapterFactory) -> None:
        """Make ``adapterClass(self)`` the component for ``interfaceClass``."""
        self.setComponent(interfaceClass, adapterClass(self))

    def addAdapter(self, adapterClass: AdapterFactory, ignoreClass: bool = False) -> Any:
        """Make ``adapterClass(self)`` a component (see :meth:`addComponent`) and return it."""
        adapter = adapterClass(self)
        self.addComponent(adapter, ignoreClass)
        return adapter

    def setComponent(self, interfaceClass: Any, component: Any) -> None:
        """Make ``component`` the component for ``interfaceClass``, replacing any other."""
        self._adapterCache[interfaceClass] = component

    def addComponent(self, component: Any, ignoreClass: bool = False) -> None:
        """Store ``component`` under each interface it provides.

        Args:
            component: The component.
            ignoreClass: Store it under every interface it provides. When False (the
                default), only under those for which ``type(component)`` is the registered
                adapter factory from this object's class.
        """
        for iface in declarations.providedBy(component):
            if ignoreClass or self.locateAdapterClass(type(self), iface, None) is type(component):
                self._adapterCache[iface] = component

    def unsetComponent(self, interfaceClass: Any) -> None:
        """Forget the component for ``interfaceClass``.

        Raises:
            KeyError: There is none.
        """
        del self._adapterCache[interfaceClass]

    def removeComponent(self, component: Any) -> list[Any]:
        """Forget ``component`` under every interface; return those interfaces."""
        removed = [iface for iface, held in self._adapterCache.items() if held is component]
        for iface in removed:
            del self._adapterCache[iface]
        return removed

    def getComponent(self, interface: Any, default: Any = None) -> Any:
        """Return the component for ``interface``, adapting (and remembering) on first use.

        An adapter whose ``temporaryAdapter`` attribute is true is not remembered; one whose
        ``multiComponent`` attribute is true is also stored under its other interfaces.

        Args:
            interface: The interface wanted.
            default: Returned when nothing adapts this object to ``interface``.

        Returns:
            The component, this object itself if it provides ``interface``, or ``default``.
        """
        cache = self._adapterCache
        if interface in cache:
            return cache[interface]
        adapter = interface.__adapt__(self)
        if adapter is None:
            return default
        if not getattr(adapter, "temporaryAdapter", False):
            cache[interface] = adapter
            if getattr(adapter, "multiComponent", False):
                self.addComponent(adapter)
        return adapter

    def __conform__(self, interface: Any) -> Any:
        """Answer ``interface(self)`` from the components (None when there is none)."""
        return self.getComponent(interface)


class ReprableComponentized(Componentized):
    """A :class:`Componentized` whose ``repr`` lists its components."""

    def __repr__(self) -> str:
        cache = self._adapterCache
        parts = ", ".join(f"{iface.__name__}: {held!r}" for iface, held in cache.items())
        return f"<{type(self).__name__} {{{parts}}}>"


def proxyForInterface(iface: Any, originalAttribute: str = "original") -> type:
    """Return a class whose instances forward ``iface``'s names to a wrapped object.

    ``proxyForInterface(IResource)(resource)`` provides ``IResource`` by delegating every
    attribute and method the interface names (including those of the interfaces it
    extends) to ``resource``; subclass it to override a few of them.

    Args:
        iface: The interface to proxy.
        originalAttribute: The attribute of the proxy holding the wrapped object.

    Returns:
        A new class, taking the wrapped object as its one constructor argument.
    """

    def __init__(self: Any, original: Any) -> None:
        setattr(self, originalAttribute, original)

    namespace: dict[str, Any] = {"__init__": __init__}
    for name in iface.names(all=True):
        namespace[name] = _Forward(originalAttribute, name)
    proxy = type(f"(Proxy for {iface.__module__}.{iface.__name__})", (), namespace)
    implementer(iface)(proxy)
    return proxy


class _Forward:
    """A descriptor reading ``name`` from the object a proxy wraps (and writing it there)."""

    def __init__(self, original: str, name: str) -> None:
        self.original = original
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return getattr(getattr(instance, self.original), self.name)

    def __set__(self, instance: object, value: Any) -> None:
        setattr(getattr(instance, self.original), self.name, value)

    def __delete__(self, instance: object) -> None:
        delattr(getattr(instance, self.original), self.name)
