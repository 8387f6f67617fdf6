"""Services: the parts of a long-running program that start and stop together.

``twisted.application.service`` ports to this module. A :class:`Service` is started
(``privilegedStartService``, then ``startService``) and stopped (``stopService``, which may
return a Deferred that fires once it has finished); a :class:`MultiService` holds children,
starts them in the order they were added and stops them in the reverse order. An
:func:`Application` is the root a ``.tac`` file builds::

    from treadle.application import internet, service
    from treadle.web import server, static

    application = service.Application("web")
    site = server.Site(static.File("/srv/www"))
    internet.TCPServer(8080, site).setServiceParent(application)

``treadle run -y web.tac`` loads that file (:func:`loadApplication`), starts
``IService(application)`` and stops it on SIGTERM or SIGINT.

Difference from Twisted: an Application has no persistence (``IPersistable``, ``.tap``
files): ``loadApplication`` reads Python source (``.tac``) only, and says so for the
other kinds.
"""

from __future__ import annotations

import importlib
from typing import Any

from zope.interface import Attribute, Interface, implementer

from treadle.internet import defer
from treadle.plugin import IPlugin
from treadle.python._compat import script_builtins
from treadle.python.components import Componentized

__all__ = [
    "Application",
    "IProcess",
    "IService",
    "IServiceCollection",
    "IServiceMaker",
    "MultiService",
    "Process",
    "Service",
    "ServiceMaker",
    "loadApplication",
]


class IServiceMaker(Interface):  # type: ignore[misc]  # zope is untyped
    """Makes the service of a ``treadle run NAME`` (``twistd NAME``) plugin.

    Provided with :class:`~treadle.plugin.IPlugin` by an object in a plugin module.
    """

    tapname = Attribute("The plugin's short name: the word after 'treadle run'.")
    description = Attribute("A one-line summary, shown by 'treadle run --help'.")
    options = Attribute("A usage.Options subclass: the plugin's command-line options.")

    def makeService(options):  # type: ignore[no-untyped-def]
        """Return the IService to run, built from the parsed ``options``."""


@implementer(IPlugin, IServiceMaker)
class ServiceMaker:
    """An :class:`IServiceMaker` whose ``Options`` and ``makeService`` live in a module.

    The module is imported only when they are asked for, so listing plugins stays cheap.

    Args:
        name: A human-readable name.
        module: The dotted name of the module defining ``Options`` and ``makeService``.
        description: The one-line summary.
        tapname: The plugin's command name.
    """

    def __init__(self, name: str, module: str, description: str, tapname: str) -> None:
        self.name = name
        self.module = module
        self.description = description
        self.tapname = tapname

    @property
    def options(self) -> Any:
        """The module's ``Options`` class."""
        return importlib.import_module(self.module).Options

    @property
    def makeService(self) -> Any:
        """The module's ``makeService`` function."""
        return importlib.import_module(self.module).makeService


class IService(Interface):  # type: ignore[misc]
    """Something started when the program starts and stopped when it stops."""

    name = Attribute("The service's name (a str), or None.")
    running = Attribute("Whether the service is running.")
    parent = Attribute("The IServiceCollection holding this service, or None.")

    def setName(name):  # type: ignore[no-untyped-def]
        """Set the name. Raises RuntimeError once the service has a parent."""

    def setServiceParent(parent):  # type: ignore[no-untyped-def]
        """Add the service to ``parent`` (an IServiceCollection) and set ``parent``.

        Raises RuntimeError when ``parent`` already has a child of the same name.
        """

    def disownServiceParent():  # type: ignore[misc, no-untyped-def]
        """Remove the service from its parent; may return a Deferred of its stopping."""

    def privilegedStartService():  # type: ignore[misc, no-untyped-def]
        """Prepare to start: work needing privileges (binding low ports) happens here."""

    def startService():  # type: ignore[misc, no-untyped-def]
        """Start the service."""

    def stopService():  # type: ignore[misc, no-untyped-def]
        """Stop the service; may return a Deferred that fires once it has stopped."""


class IServiceCollection(Interface):  # type: ignore[misc]
    """A service holding other services."""

    def getServiceNamed(name):  # type: ignore[no-untyped-def]
        """Return the child named ``name``. Raises KeyError when there is none."""

    def __iter__():  # type: ignore[misc, no-untyped-def]
        """Iterate over the children, in the order they were added."""

    def addService(service):  # type: ignore[no-untyped-def]
        """Add a child (called by ``setServiceParent``).

        Raises RuntimeError when a child of the same name exists.
        """

    def removeService(service):  # type: ignore[no-untyped-def]
        """Remove a child (called by ``disownServiceParent``).

        Raises ValueError when it is not a child. Returns what its ``stopService``
        returned if the collection is running, else None.
        """


class IProcess(Interface):  # type: ignore[misc]
    """How the process should run: its name and the user and group to run as."""

    processName = Attribute("The process name, or None to leave it alone.")
    uid = Attribute("The user id to run as, or None to leave it alone.")
    gid = Attribute("The group id to run as, or None to leave it alone.")


@implementer(IService)
class Service:
    """A service with the bookkeeping done: name, parent and running state.

    Subclasses override :meth:`startService` and :meth:`stopService`, calling these first.

    Attributes:
        name: The name, or None.
        parent: The collection holding this service, or None.
        running: True between :meth:`startService` and :meth:`stopService`.
    """

    running: bool = False
    name: str | None = None
    parent: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle everything but the running state."""
        state = self.__dict__.copy()
        state.pop("running", None)
        return state

    def setName(self, name: str) -> None:
        """Set the name.

        Raises:
            RuntimeError: The service already has a parent (which knows it by its name).
        """
        if self.parent is not None:
            raise RuntimeError("cannot change name when parent exists")
        self.name = name

    def setServiceParent(self, parent: Any) -> None:
        """Become a child of ``parent``, leaving a previous parent first.

        Args:
            parent: An :class:`IServiceCollection`, or something that adapts to one (an
                :func:`Application`).

        Raises:
            RuntimeError: ``parent`` already has a child with this service's name.
        """
        if self.parent is not None:
            self.disownServiceParent()
        parent = IServiceCollection(parent, parent)
        self.parent = parent
        parent.addService(self)

    def disownServiceParent(self) -> Any:
        """Leave the parent.

        Returns:
            What the parent's ``removeService`` returned: the Deferred (or value) of this
            service's ``stopService`` when the parent was running, else None.
        """
        result = self.parent.removeService(self)
        self.parent = None
        return result

    def privilegedStartService(self) -> None:
        """Do the start-up work that needs privileges (nothing, here)."""

    def startService(self) -> None:
        """Mark the service running."""
        self.running = True

    def stopService(self) -> Any:
        """Mark the service stopped.

        Returns:
            None here; subclasses may return a Deferred that fires once they have stopped.
        """
        self.running = False
        return None


@implementer(IServiceCollection)
class MultiService(Service):
    """A service of services: started in the order added, stopped in reverse order.

    Children do not wait for one another: each is started (or stopped) as soon as the one
    before it returns. :meth:`stopService` returns a Deferred that fires once every child's
    ``stopService`` result has.

    Attributes:
        services: The children, in the order added.
        namedServices: The children that have a name, by name.
    """

    def __init__(self) -> None:
        self.services: list[Any] = []
        self.namedServices: dict[str, Any] = {}
        self.parent = None

    def privilegedStartService(self) -> None:
        """Call every child's ``privilegedStartService``, in order."""
        super().privilegedStartService()
        for service in self:
            service.privilegedStartService()

    def startService(self) -> None:
        """Mark this service running and start every child, in order."""
        super().startService()
        for service in self:
            service.startService()

    def stopService(self) -> defer.Deferred[Any]:
        """Stop every child, last added first.

        Returns:
            A :class:`~treadle.internet.defer.DeferredList` of the children's results: it
            fires (with ``(success, result)`` pairs) once every child has stopped, even if
            some failed.
        """
        super().stopService()
        stopping = [defer.maybeDeferred(service.stopService) for service in reversed(list(self))]
        return defer.DeferredList(stopping)

    def getServiceNamed(self, name: str) -> Any:
        """Return the child named ``name``.

        Raises:
            KeyError: No child has that name.
        """
        return self.namedServices[name]

    def __iter__(self) -> Any:
        """Iterate over the children, in the order they were added."""
        return iter(self.services)

    def addService(self, service: Any) -> None:
        """Add a child; start it at once if this collection is running.

        Raises:
            RuntimeError: A child with the same name exists.
        """
        if service.name is not None:
            if service.name in self.namedServices:
                raise RuntimeError(f"cannot have two services with same name '{service.name}'")
            self.namedServices[service.name] = service
        self.services.append(service)
        if self.running:
            # Late, but the child gets the same two calls the others had.
            service.privilegedStartService()
            service.startService()

    def removeService(self, service: Any) -> Any:
        """Remove a child; stop it if this collection is running.

        Returns:
            The child's ``stopService`` result when running, else None.

        Raises:
            ValueError: ``service`` is not a child.
            KeyError: Its name is not registered here.
        """
        if service.name:
            del self.namedServices[service.name]
        self.services.remove(service)
        if self.running:
            return service.stopService()
        return None


@implementer(IProcess)
class Process:
    """The process parameters of an :func:`Application`.

    Args:
        uid: The user id to run as, or None.
        gid: The group id to run as, or None.
    """

    processName: str | None = None

    def __init__(self, uid: int | None = None, gid: int | None = None) -> None:
        self.uid = uid
        self.gid = gid


def Application(name: str, uid: int | None = None, gid: int | None = None) -> Componentized:
    """Return the root of a program's services, as a ``.tac`` file makes it.

    The object is a :class:`~treadle.python.components.Componentized`; use it through its
    interfaces: ``IService(application)`` (a :class:`MultiService` named ``name``),
    ``IServiceCollection(application)`` (the same one) and ``IProcess(application)``.
    ``service.setServiceParent(application)`` adds a service to it.

    Args:
        name: The application's name (also its service's).
        uid: The user id the process should run as (``treadle run`` switches to it when
            started as root), or None.
        gid: The group id, likewise.
    """
    application = Componentized()
    for component in (MultiService(), Process(uid, gid)):
        application.addComponent(component, ignoreClass=True)
    root: Any = IService(application)
    root.setName(name)
    return application


def loadApplication(filename: str, kind: str, passphrase: str | None = None) -> Any:
    """Run a ``.tac`` file and return its ``application`` variable.

    The file runs as ``twistd -y`` runs it: in a fresh namespace holding only ``__file__``
    (``filename`` as given), with its ``twisted.*`` imports served by treadle (see
    :mod:`treadle.python._compat`), so an unported ``.tac`` file works too.

    Args:
        filename: The file.
        kind: ``"python"`` (a ``.tac``/``.py`` file); the other kinds of Twisted
            (``"pickle"``, ``"source"``, ``"xml"``) are not supported.
        passphrase: Must be None (encrypted files are not supported).

    Returns:
        The value of the file's ``application`` variable.

    Raises:
        KeyError: The file defines no ``application`` (``KeyError('application')``).
        ValueError: ``kind`` is not ``"python"``, or a passphrase was given.
        OSError: The file cannot be read.
        Exception: Whatever the file's code raised.
    """
    if kind != "python":
        raise ValueError(
            f"cannot load a {kind!r} application: treadle reads Python (.tac) files only"
        )
    if passphrase is not None:
        raise ValueError("encrypted applications are not supported")
    with open(filename, "rb") as f:
        source = f.read()  # bytes: compile() honours a coding declaration
    namespace: dict[str, Any] = {"__file__": filename, "__builtins__": script_builtins()}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["application"]
