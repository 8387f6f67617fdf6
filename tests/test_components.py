"""Adapters and componentized objects on zope.interface (``treadle.python.components``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from zope.interface import Attribute, Interface, implementer
from zope.interface.adapter import AdapterRegistry

from treadle.python import components
from treadle.python.components import (
    Adapter,
    CannotAdapt,
    Componentized,
    ReprableComponentized,
    getAdapterFactory,
    proxyForInterface,
    registerAdapter,
)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test registers its adapters in a registry of its own; none outlives it."""
    monkeypatch.setattr(components, "globalRegistry", AdapterRegistry())
    yield


class ICounter(Interface):
    value = Attribute("An int value which counts up once per page view.")


class IGreeter(Interface):
    def greet(self) -> str:
        """Return a greeting."""
        ...


@implementer(ICounter)
class Counter:
    def __init__(self, original: object) -> None:
        self.original = original
        self.value = 0


class Thing(Componentized):
    pass


# -- declarations (zope's own) ----------------------------------------------------------------


def test_the_tutorials_declarations_work_with_zope_interface() -> None:
    counter = Counter(None)
    assert ICounter.providedBy(counter)
    assert not IGreeter.providedBy(counter)
    assert ICounter.implementedBy(Counter)


# -- adapting ------------------------------------------------------------------------------------


def test_calling_an_interface_adapts_with_the_registered_factory() -> None:
    class Original:
        pass

    registerAdapter(Counter, Original, ICounter)
    original = Original()
    counter = ICounter(original)
    assert isinstance(counter, Counter)
    assert counter.original is original
    # Not componentized: every call makes a new adapter.
    assert ICounter(original) is not counter


def test_an_object_that_provides_the_interface_is_its_own_adapter() -> None:
    counter = Counter(None)
    assert ICounter(counter) is counter


def test_no_adapter_raises_or_gives_the_default() -> None:
    with pytest.raises(CannotAdapt) as info:
        ICounter(object())
    assert isinstance(info.value, TypeError)  # as zope's "Could not adapt"
    marker = object()
    assert ICounter(object(), marker) is marker


def test_an_adapter_factory_returning_none_means_no_adapter() -> None:
    class Original:
        pass

    registerAdapter(lambda original: None, Original, ICounter)
    with pytest.raises(CannotAdapt):
        ICounter(Original())


def test_an_interface_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        ICounter()


def test_adapters_registered_for_a_base_class_serve_subclasses() -> None:
    class Base:
        pass

    class Sub(Base):
        pass

    class Closer:
        def __init__(self, original: object) -> None:
            self.original = original

    registerAdapter(Counter, Base, ICounter)
    assert isinstance(ICounter(Sub()), Counter)
    registerAdapter(Closer, Sub, ICounter)
    assert isinstance(ICounter(Sub()), Closer)  # the closest class wins
    assert isinstance(ICounter(Base()), Counter)


def test_adapters_registered_from_an_interface() -> None:
    class Greeter:
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        def greet(self) -> str:
            return f"hello #{self.counter.value}"

    registerAdapter(Greeter, ICounter, IGreeter)
    assert IGreeter(Counter(None)).greet() == "hello #0"
    assert getAdapterFactory(Counter, IGreeter, None) is Greeter
    assert getAdapterFactory(ICounter, IGreeter, None) is Greeter
    assert getAdapterFactory(int, IGreeter, "nope") == "nope"


def test_one_factory_for_several_interfaces() -> None:
    class Original:
        pass

    registerAdapter(Counter, Original, ICounter, IGreeter)
    assert isinstance(IGreeter(Original()), Counter)
    assert isinstance(ICounter(Original()), Counter)


def test_duplicate_registration_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Original:
        pass

    registerAdapter(Counter, Original, ICounter)
    with pytest.raises(ValueError, match="already registered"):
        registerAdapter(Counter, Original, ICounter)
    monkeypatch.setattr(components, "ALLOW_DUPLICATES", True)

    class Other:
        def __init__(self, original: object) -> None:
            pass

    registerAdapter(Other, Original, ICounter)
    assert isinstance(ICounter(Original()), Other)


def test_registration_needs_an_interface() -> None:
    with pytest.raises(ValueError, match="at least one interface"):
        registerAdapter(Counter, object)


def test_an_interface_redefined_under_the_same_name_is_a_duplicate() -> None:
    # What a .rpy script without cache() does on its second request: it defines its
    # interface anew and registers again. zope interfaces compare by name, so Twisted and
    # treadle both refuse the second registration.
    def define() -> Any:
        class IVisits(Interface):
            pass

        return IVisits

    class Session:
        pass

    registerAdapter(Counter, Session, define())
    with pytest.raises(ValueError, match="already registered"):
        registerAdapter(Counter, Session, define())


def test_conform_is_asked_first() -> None:
    special = Counter(None)

    class Conforming:
        def __conform__(self, iface: type) -> Any:
            return special if iface is ICounter else None

    assert ICounter(Conforming()) is special
    with pytest.raises(CannotAdapt):
        IGreeter(Conforming())  # __conform__ said None and nothing else adapts


# -- componentized objects -----------------------------------------------------------------------


def test_componentized_keeps_one_adapter_per_interface() -> None:
    registerAdapter(Counter, Thing, ICounter)
    thing = Thing()
    counter = ICounter(thing)
    counter.value += 1
    assert ICounter(thing) is counter
    assert thing.getComponent(ICounter) is counter
    assert ICounter(thing).value == 1
    assert ICounter(Thing()) is not counter


def test_get_component_default_and_self() -> None:
    thing = Thing()
    assert thing.getComponent(ICounter) is None
    marker = object()
    assert thing.getComponent(ICounter, marker) is marker

    @implementer(IGreeter)
    class GreetingThing(Componentized):
        def greet(self) -> str:
            return "hi"

    greeting = GreetingThing()
    assert greeting.getComponent(IGreeter) is greeting
    assert IGreeter(greeting) is greeting


def test_set_unset_and_remove_components() -> None:
    thing = Thing()
    counter = Counter(thing)
    thing.setComponent(ICounter, counter)
    thing.setComponent(IGreeter, counter)
    assert ICounter(thing) is counter
    thing.unsetComponent(IGreeter)
    assert thing.getComponent(IGreeter) is None
    with pytest.raises(KeyError):
        thing.unsetComponent(IGreeter)
    thing.setComponent(IGreeter, counter)
    assert sorted(i.__name__ for i in thing.removeComponent(counter)) == ["ICounter", "IGreeter"]
    assert thing.getComponent(ICounter) is None


def test_set_adapter_and_add_adapter() -> None:
    thing = Thing()
    thing.setAdapter(ICounter, Counter)
    counter = thing.getComponent(ICounter)
    assert isinstance(counter, Counter) and counter.original is thing

    other = Thing()
    # Not the registered adapter for Thing -> ICounter: stored only with ignoreClass.
    added = other.addAdapter(Counter)
    assert isinstance(added, Counter)
    assert other.getComponent(ICounter) is None
    assert other.addAdapter(Counter, ignoreClass=True) is other.getComponent(ICounter)

    registerAdapter(Counter, Thing, ICounter)
    third = Thing()
    component = Counter(third)
    third.addComponent(component)
    assert third.getComponent(ICounter) is component
    assert third.locateAdapterClass(Thing, ICounter, None) is Counter


def test_temporary_and_multi_component_adapters() -> None:
    @implementer(ICounter)
    class Temporary:
        temporaryAdapter = True

        def __init__(self, original: object) -> None:
            pass

    @implementer(ICounter, IGreeter)
    class Multi:
        multiComponent = True

        def __init__(self, original: object) -> None:
            pass

    class Holder(Componentized):
        pass

    class Other(Componentized):
        pass

    registerAdapter(Temporary, Holder, ICounter)
    holder = Holder()
    assert holder.getComponent(ICounter) is not holder.getComponent(ICounter)

    registerAdapter(Multi, Other, ICounter, IGreeter)
    other = Other()
    multi = other.getComponent(ICounter)
    assert other._adapterCache[IGreeter] is multi  # stored under both at once


def test_reprable_componentized_lists_its_components() -> None:
    thing = ReprableComponentized()
    thing.setComponent(ICounter, "c")
    assert repr(thing) == "<ReprableComponentized {ICounter: 'c'}>"


# -- helpers -------------------------------------------------------------------------------------


def test_adapter_keeps_the_original_and_defers_conform() -> None:
    thing = Thing()
    counter = Counter(thing)
    thing.setComponent(ICounter, counter)
    adapter = Adapter(thing)
    assert adapter.original is thing
    assert ICounter(adapter) is counter  # answered by the original's components


def test_proxy_for_interface_forwards_what_the_interface_names() -> None:
    class IExtended(IGreeter):
        name = Attribute("A name.")

    @implementer(IExtended)
    class Greeter:
        name = "treadle"

        def greet(self) -> str:
            return "hello"

        def other(self) -> str:
            return "not proxied"

    proxy_class = proxyForInterface(IExtended)

    class Shouting(proxy_class):  # type: ignore[misc, valid-type]
        def greet(self) -> str:
            return self.original.greet().upper()

    greeter = Greeter()
    proxy = Shouting(greeter)
    assert IExtended.providedBy(proxy) and IGreeter.providedBy(proxy)
    assert proxy.greet() == "HELLO"
    assert proxy_class(greeter).greet() == "hello"
    assert proxy.name == "treadle"
    proxy.name = "changed"
    assert greeter.name == "changed"
    assert not hasattr(proxy, "other")
    assert proxyForInterface(IGreeter, "wrapped")(greeter).wrapped is greeter
