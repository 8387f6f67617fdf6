"""Interfaces, adapters and componentized objects: what the Twisted Web tutorials use.

Twisted builds this on ``zope.interface``; treadle keeps only the part that web code needs,
in plain typed Python, so the tutorials' session pattern ports by changing imports::

    from treadle.components import Attribute, Interface, implementer, registerAdapter
    from treadle.server import Session

    class ICounter(Interface):
        value = Attribute("An int value which counts up once per page view.")

    @implementer(ICounter)
    class Counter:
        def __init__(self, session):
            self.value = 0

    registerAdapter(Counter, Session, ICounter)

    counter = ICounter(request.getSession())  # the same Counter for the same session

An *interface* is any class. Subclasses of :class:`Interface` can be called to adapt an
object (``ICounter(obj)``), as zope interfaces can; any other class (a ``typing.Protocol``,
say) works through :func:`adapt` and :meth:`Componentized.getComponent`. "Provides" is
nominal: an object provides an interface when its class derives from it or declared it with
:func:`implementer` -- never by structure, so no ``isinstance`` against a Protocol is made.

Adapting ``obj`` to ``iface`` tries, in order: ``obj.__conform__(iface)`` (how a
:class:`Componentized` answers from its cache), ``obj`` itself if it provides ``iface``, then
the adapter factory registered for the closest class of ``obj`` (its MRO), or for an
interface it provides.

Differences from Twisted and zope.interface, on purpose:

* Components are keyed by the interface object, not by its qualified name: treadle does not
  pickle components, and the object is cheaper and cannot collide.
* No adapter hooks, multi-adapters, interface invariants or verification: nothing in
  twisted.web's public API needs them.
* Every subclass of :class:`Interface` is an interface (as in zope): implement one with
  :func:`implementer`, never by subclassing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

__all__ = [
    "ALLOW_DUPLICATES",
    "AdapterRegistry",
    "Attribute",
    "CannotAdapt",
    "Componentized",
    "Interface",
    "InterfaceClass",
    "adapt",
    "getAdapterFactory",
    "globalRegistry",
    "implementedBy",
    "implementer",
    "providedBy",
    "registerAdapter",
]

_T = TypeVar("_T")
_C = TypeVar("_C", bound=type)

#: An adapter factory: called with the original object, returns the adapter (or None when it
#: cannot adapt that object).
AdapterFactory = Callable[[Any], Any]

#: Set to True to let :func:`registerAdapter` replace an existing registration instead of
#: raising (Twisted's module flag of the same name, for code that re-registers on reload).
ALLOW_DUPLICATES = False


class _Missing:
    """The type of the "no default given" marker (a sentinel ``None`` cannot stand for)."""

    def __repr__(self) -> str:
        return "<no default>"


_MISSING: Final = _Missing()

# Bases every class has that are never interfaces anyone declared.
_NOT_INTERFACES: Final = frozenset((object, Protocol, Generic))


class CannotAdapt(TypeError):
    """No adapter turns the object into the interface (zope raises ``TypeError`` too)."""


# -- declarations ------------------------------------------------------------------------------


def _expand(iface: type) -> Iterator[type]:
    """Yield ``iface`` and the interfaces it extends (an ``IB(IA)`` provider provides IA)."""
    for base in iface.__mro__:
        if base not in _NOT_INTERFACES:
            yield base


def implementer(*interfaces: type) -> Callable[[_C], _C]:
    """Declare that instances of the decorated class provide ``interfaces``.

    Declarations add up along inheritance: a subclass provides what its bases declared.

    Args:
        *interfaces: The interfaces (any classes) the class implements.

    Returns:
        A class decorator that returns the class unchanged apart from the declaration.

    Raises:
        TypeError: An interface is not a class.
    """
    for iface in interfaces:
        if not isinstance(iface, type):
            raise TypeError(f"an interface must be a class, not {iface!r}")

    def declare(cls: _C) -> _C:
        own: tuple[type, ...] = cls.__dict__.get("__implemented__", ())
        cls.__implemented__ = own + tuple(i for i in interfaces if i not in own)  # type: ignore[attr-defined]
        return cls

    return declare


def implementedBy(cls: type) -> tuple[type, ...]:
    """Return the interfaces instances of ``cls`` provide through :func:`implementer`.

    The classes of ``cls``'s own MRO are not listed (they are provided nominally anyway).

    Args:
        cls: A class.

    Returns:
        The declared interfaces and those they extend, most specific first, without repeats.
    """
    found: dict[type, None] = {}
    for klass in cls.__mro__:
        for iface in klass.__dict__.get("__implemented__", ()):
            for each in _expand(iface):
                found.setdefault(each, None)
    return tuple(found)


def providedBy(obj: object) -> tuple[type, ...]:
    """Return the interfaces ``obj`` declares it provides (see :func:`implementedBy`).

    Args:
        obj: Any object.

    Returns:
        The interfaces declared by ``obj``'s class and its bases.
    """
    return implementedBy(type(obj))


def _provides(obj: object, iface: type) -> bool:
    cls = type(obj)
    return iface in cls.__mro__ or iface in implementedBy(cls)


# -- the registry ------------------------------------------------------------------------------


class AdapterRegistry:
    """Adapter factories by ``(original, interface)``; the module keeps one global instance."""

    def __init__(self) -> None:
        self._factories: dict[tuple[type, type], AdapterFactory] = {}

    def register(
        self,
        adapterFactory: AdapterFactory,
        origInterface: type,
        *interfaceClasses: type,
        replace: bool = False,
    ) -> None:
        """Register ``adapterFactory`` to adapt ``origInterface`` to each of ``interfaceClasses``.

        Args:
            adapterFactory: Called with the original object; returns the adapter.
            origInterface: A class (its instances and subclasses' instances are adapted) or
                an interface (anything providing it is adapted).
            *interfaceClasses: The interfaces the adapter provides.
            replace: Replace an existing registration instead of raising.

        Raises:
            TypeError: No interface was given, or one is not a class.
            ValueError: An adapter is already registered for one of the pairs.
        """
        if not interfaceClasses:
            raise TypeError("registerAdapter needs at least one interface to adapt to")
        for iface in (origInterface, *interfaceClasses):
            if not isinstance(iface, type):
                raise TypeError(f"an interface must be a class, not {iface!r}")
        if not replace:
            for iface in interfaceClasses:
                existing = self._factories.get((origInterface, iface))
                if existing is not None:
                    raise ValueError(
                        f"an adapter ({existing!r}) was already registered from "
                        f"{origInterface.__qualname__} to {iface.__qualname__}"
                    )
        for iface in interfaceClasses:
            self._factories[(origInterface, iface)] = adapterFactory

    def unregister(self, origInterface: type, interfaceClass: type) -> None:
        """Remove the registration from ``origInterface`` to ``interfaceClass`` (if any).

        Args:
            origInterface: As given to :meth:`register`.
            interfaceClass: One of the interfaces given to :meth:`register`.
        """
        self._factories.pop((origInterface, interfaceClass), None)

    def lookup(self, fromClass: type, toInterface: type) -> AdapterFactory | None:
        """Return the factory adapting instances of ``fromClass`` to ``toInterface``, or None.

        The classes of ``fromClass``'s MRO are tried first (closest first), then the
        interfaces it declares with :func:`implementer`.

        Args:
            fromClass: The class of the object to adapt (or an interface).
            toInterface: The interface wanted.

        Returns:
            The factory, or None when nothing is registered.
        """
        factories = self._factories
        if not factories:
            return None
        for klass in fromClass.__mro__:
            factory = factories.get((klass, toInterface))
            if factory is not None:
                return factory
        for iface in implementedBy(fromClass):
            factory = factories.get((iface, toInterface))
            if factory is not None:
                return factory
        return None


#: The registry :func:`registerAdapter` and interface calls use.
globalRegistry: Final = AdapterRegistry()


def registerAdapter(
    adapterFactory: AdapterFactory, origInterface: type, *interfaceClasses: type
) -> None:
    """Register ``adapterFactory`` in the global registry (Twisted's ``registerAdapter``).

    Args:
        adapterFactory: Called with the original object; returns the adapter.
        origInterface: The class (or interface) of the objects to adapt.
        *interfaceClasses: The interfaces the adapter provides.

    Raises:
        TypeError: No interface was given, or one is not a class.
        ValueError: An adapter is already registered for one of the pairs (unless the module
            flag :data:`ALLOW_DUPLICATES` is true).
    """
    globalRegistry.register(
        adapterFactory, origInterface, *interfaceClasses, replace=ALLOW_DUPLICATES
    )


def getAdapterFactory(fromInterface: type, toInterface: type, default: Any) -> Any:
    """Return the registered factory from ``fromInterface`` to ``toInterface``, or ``default``.

    Args:
        fromInterface: A class or interface.
        toInterface: The interface wanted.
        default: Returned when no factory is registered.

    Returns:
        The factory or ``default``.
    """
    factory = globalRegistry.lookup(fromInterface, toInterface)
    return default if factory is None else factory


def _adapt_without_conform(obj: object, iface: type) -> Any:
    if _provides(obj, iface):
        return obj
    factory = globalRegistry.lookup(type(obj), iface)
    return None if factory is None else factory(obj)


def adapt(obj: object, iface: type, default: Any = _MISSING) -> Any:
    """Return ``obj`` adapted to ``iface``: what ``iface(obj)`` does for an :class:`Interface`.

    Use this form when ``iface`` is a ``typing.Protocol`` or another class that cannot be
    called to adapt.

    Args:
        obj: The object to adapt.
        iface: The interface wanted (any class).
        default: Returned when ``obj`` cannot be adapted.

    Returns:
        ``obj.__conform__(iface)`` if that is not None, else ``obj`` if it provides ``iface``,
        else a new adapter from the registered factory.

    Raises:
        CannotAdapt: Nothing adapts ``obj`` and no ``default`` was given.
    """
    conform = getattr(obj, "__conform__", None)
    if conform is not None and not isinstance(obj, type):
        adapter = conform(iface)
        if adapter is not None:
            return adapter
    adapter = _adapt_without_conform(obj, iface)
    if adapter is not None:
        return adapter
    if default is _MISSING:
        raise CannotAdapt("Could not adapt", obj, iface)
    return default


# -- interfaces ----------------------------------------------------------------------------------


class InterfaceClass(type):
    """The metaclass of :class:`Interface`: calling an interface adapts its argument."""

    def __call__(cls, obj: object = _MISSING, default: Any = _MISSING) -> Any:
        """Adapt ``obj`` to this interface (see :func:`adapt`); interfaces are never instantiated.

        Raises:
            CannotAdapt: Nothing adapts ``obj`` and no ``default`` was given.
            TypeError: No object was given.
        """
        if obj is _MISSING:
            raise TypeError(f"{cls.__qualname__} is an interface: call it with an object to adapt")
        return adapt(obj, cls, default)

    def providedBy(cls, obj: object) -> bool:
        """Return True when ``obj`` provides this interface (nominally, see the module)."""
        return _provides(obj, cls)

    def implementedBy(cls, klass: type) -> bool:
        """Return True when instances of ``klass`` provide this interface."""
        return issubclass(klass, cls) or cls in implementedBy(klass)

    def __adapt__(cls, obj: object) -> Any:
        """Return ``obj`` if it provides this interface, else its registered adapter, or None."""
        return _adapt_without_conform(obj, cls)


class Interface(metaclass=InterfaceClass):
    """Base of callable interfaces: ``class ICounter(Interface): ...`` then ``ICounter(obj)``.

    An interface only describes: give its attributes as :class:`Attribute` and its methods
    as stubs with docstrings. Classes implement it with :func:`implementer`.
    """

    if TYPE_CHECKING:
        # What type checkers should make of ``ICounter(obj)``: the metaclass answers the
        # call with an adapter of any class, never an instance of the interface.
        def __new__(cls, obj: object, default: Any = ...) -> Any: ...


class Attribute:
    """Describes an attribute of an interface (zope's ``Attribute``); it holds only its doc.

    Args:
        doc: What the attribute means.

    Attributes:
        name: The name it was given in the interface (set when the class is created).
    """

    def __init__(self, doc: str = "") -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<Attribute {self.name or '?'}: {self.__doc__!r}>"


# -- componentized objects -----------------------------------------------------------------------


class Componentized:
    """An object that keeps one component per interface, made by adapters on first request.

    ``getComponent(ICounter)`` (or ``ICounter(obj)`` for an :class:`Interface`) builds the
    registered adapter once and returns that same instance afterwards, so state kept on the
    adapter lives as long as the componentized object -- how a ``Session`` stores a counter.
    """

    def __init__(self) -> None:
        self._adapterCache: dict[type, Any] = {}

    def locateAdapterClass(self, klass: type, interfaceClass: type, default: Any) -> Any:
        """Return the adapter factory from ``klass`` to ``interfaceClass``, or ``default``."""
        return getAdapterFactory(klass, interfaceClass, default)

    def setAdapter(self, interfaceClass: type, adapterClass: AdapterFactory) -> None:
        """Make ``adapterClass(self)`` the component for ``interfaceClass``."""
        self.setComponent(interfaceClass, adapterClass(self))

    def addAdapter(self, adapterClass: AdapterFactory, ignoreClass: bool = False) -> Any:
        """Make ``adapterClass(self)`` a component (see :meth:`addComponent`) and return it."""
        adapter = adapterClass(self)
        self.addComponent(adapter, ignoreClass)
        return adapter

    def setComponent(self, interfaceClass: type, component: Any) -> None:
        """Make ``component`` the component for ``interfaceClass``, replacing any other."""
        self._adapterCache[interfaceClass] = component

    def addComponent(self, component: Any, ignoreClass: bool = False) -> None:
        """Store ``component`` under each interface it declares with :func:`implementer`.

        Args:
            component: The component.
            ignoreClass: Store it under every declared interface. When False (the default),
                only under those for which ``type(component)`` is the registered adapter
                factory from this object's class.
        """
        for iface in providedBy(component):
            if ignoreClass or self.locateAdapterClass(type(self), iface, None) is type(component):
                self._adapterCache[iface] = component

    def unsetComponent(self, interfaceClass: type) -> None:
        """Forget the component for ``interfaceClass``.

        Raises:
            KeyError: There is none.
        """
        del self._adapterCache[interfaceClass]

    def removeComponent(self, component: Any) -> list[type]:
        """Forget ``component`` under every interface; return those interfaces."""
        removed = [iface for iface, held in self._adapterCache.items() if held is component]
        for iface in removed:
            del self._adapterCache[iface]
        return removed

    def getComponent(self, interface: type, default: Any = None) -> Any:
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
        adapter = _adapt_without_conform(self, interface)
        if adapter is None:
            return default
        if not getattr(adapter, "temporaryAdapter", False):
            cache[interface] = adapter
            if getattr(adapter, "multiComponent", False):
                self.addComponent(adapter)
        return adapter

    def __conform__(self, interface: type) -> Any:
        """Answer ``interface(self)`` from the components (None when there is none)."""
        return self.getComponent(interface)
