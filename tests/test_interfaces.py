"""treadle.internet.interfaces against Twisted's module: same names, bases, members, arguments.

A program ports by renaming ``twisted`` to ``treadle``; so every interface it may import from
``twisted.internet.interfaces`` must exist here, derive from the same interfaces, and declare
the same methods and attributes (``verifyObject`` on a program's own classes depends on it).
"""

from __future__ import annotations

import pytest
import twisted.internet.interfaces as twisted_interfaces
from zope.interface.interface import InterfaceClass, Method
from zope.interface.verify import verifyClass, verifyObject

import treadle.internet.interfaces as interfaces
from treadle.internet import protocol

#: Interfaces of Twisted's module that treadle leaves out, each with its reason. Empty: all
#: are declared (the ones describing what treadle lacks, such as UDP, still import).
SKIPPED: dict[str, str] = {}


def _twisted_interface_names() -> list[str]:
    return sorted(
        name
        for name, value in vars(twisted_interfaces).items()
        if name.startswith("I")
        and isinstance(value, InterfaceClass)
        and value.__module__ == twisted_interfaces.__name__
    )


TWISTED_NAMES = _twisted_interface_names()


def test_twisted_declares_what_this_test_expects() -> None:
    # Guards the comparison itself: an empty list would make every test below pass.
    assert len(TWISTED_NAMES) > 60
    assert {"ITransport", "IPushProducer", "IReactorTime"} <= set(TWISTED_NAMES)


def test_every_twisted_interface_is_declared() -> None:
    missing = [n for n in TWISTED_NAMES if n not in SKIPPED and not hasattr(interfaces, n)]
    assert missing == []


def test_all_lists_exactly_the_interfaces() -> None:
    declared = {
        name
        for name, value in vars(interfaces).items()
        if isinstance(value, InterfaceClass) and value.__module__ == interfaces.__name__
    }
    assert sorted(declared) == sorted(interfaces.__all__)
    assert declared == set(TWISTED_NAMES) - set(SKIPPED)


@pytest.mark.parametrize("name", TWISTED_NAMES)
def test_bases_match(name: str) -> None:
    ours = getattr(interfaces, name)
    theirs = getattr(twisted_interfaces, name)
    assert [b.__name__ for b in ours.__bases__] == [b.__name__ for b in theirs.__bases__]
    # The bases are treadle's own interfaces, not Twisted's nor copies from elsewhere.
    for base in ours.__bases__:
        if base.__name__ != "Interface":
            assert base is getattr(interfaces, base.__name__)


@pytest.mark.parametrize("name", TWISTED_NAMES)
def test_members_match(name: str) -> None:
    ours = getattr(interfaces, name)
    theirs = getattr(twisted_interfaces, name)
    assert sorted(ours.names()) == sorted(theirs.names())
    for member in theirs.names():
        their_member = theirs[member]
        our_member = ours[member]
        assert isinstance(our_member, Method) == isinstance(their_member, Method), member
        if isinstance(their_member, Method):
            ours_info = our_member.getSignatureInfo()
            theirs_info = their_member.getSignatureInfo()
            assert ours_info["required"] == theirs_info["required"], member
            assert ours_info["varargs"] == theirs_info["varargs"], member
            assert ours_info["kwargs"] == theirs_info["kwargs"], member


@pytest.mark.parametrize("name", TWISTED_NAMES)
def test_every_interface_and_member_is_documented(name: str) -> None:
    ours = getattr(interfaces, name)
    assert ours.__doc__ and ours.__doc__.strip()
    for member in ours.names():
        assert ours[member].__doc__ and ours[member].__doc__.strip(), member


def test_inheritance_is_seen_by_zope() -> None:
    assert interfaces.ITCPTransport.extends(interfaces.ITransport)
    assert interfaces.ISSLTransport.extends(interfaces.ITransport)
    assert interfaces.IPushProducer.extends(interfaces.IProducer)
    assert interfaces.IReactorThreads.extends(interfaces.IReactorFromThreads)
    assert interfaces.IReadWriteDescriptor.extends(interfaces.ILoggingContext)
    assert not interfaces.IPullProducer.extends(interfaces.IPushProducer)


def test_protocol_provides_iprotocol() -> None:
    assert verifyClass(interfaces.IProtocol, protocol.Protocol)
    assert verifyObject(interfaces.IProtocol, protocol.Protocol())
    assert verifyObject(interfaces.ILoggingContext, protocol.Protocol())


def test_factories_provide_iprotocolfactory() -> None:
    for factory_class in (protocol.Factory, protocol.ServerFactory, protocol.ClientFactory):
        assert verifyObject(interfaces.IProtocolFactory, factory_class())


def test_process_protocol_provides_iprocessprotocol() -> None:
    assert verifyObject(interfaces.IProcessProtocol, protocol.ProcessProtocol())


def test_an_incomplete_implementation_is_caught() -> None:
    from zope.interface import implementer
    from zope.interface.exceptions import Invalid

    @implementer(interfaces.IPushProducer)
    class HalfProducer:
        def pauseProducing(self) -> None:
            pass

    with pytest.raises(Invalid):
        verifyObject(interfaces.IPushProducer, HalfProducer())


def test_treadle_interfaces_are_not_twisteds() -> None:
    # Declaring a Twisted interface must not make a treadle check pass, nor the reverse:
    # the two stay separate, so a Twisted installed beside treadle is never shadowed.
    assert interfaces.ITransport is not twisted_interfaces.ITransport
    assert not interfaces.IProtocol.implementedBy(
        __import__("twisted.internet.protocol", fromlist=["Protocol"]).Protocol
    )
