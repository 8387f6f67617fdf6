"""Small helpers Twisted programs import from ``twisted.python.util``.

``twisted.python.util`` ports to this module for the names programs use:
:func:`sibpath` (a file beside a module: ``static.File(sibpath(__file__, "public"))``),
:class:`InsensitiveDict`, :func:`uniquify`, :func:`padTo`, :func:`nameToLabel`,
:func:`searchupwards`, :func:`untilConcludes`, the :class:`FancyEqMixin` and
:class:`FancyStrMixin` mixins, and the user switching of daemons (:func:`switchUID`,
:func:`uidFromString`, :func:`gidFromString`, :func:`runAsEffectiveUser`).

Not here: Twisted's deprecated or interactive helpers (``getPassword``, ``getPluginDirs``,
``addPluginDir``, ``spewer``, ``makeStatBar``, ``LineLog``, ``IntervalDifferential``,
``mergeFunctionMetadata``).
"""

from __future__ import annotations

import errno
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, AnyStr, ClassVar, TypeVar

__all__ = [
    "FancyEqMixin",
    "FancyStrMixin",
    "InsensitiveDict",
    "OrderedDict",
    "gidFromString",
    "nameToLabel",
    "padTo",
    "runAsEffectiveUser",
    "searchupwards",
    "sibpath",
    "switchUID",
    "uidFromString",
    "uniquify",
    "untilConcludes",
]

_T = TypeVar("_T")
_V = TypeVar("_V")


def sibpath(path: os.PathLike[AnyStr] | AnyStr, sibling: os.PathLike[AnyStr] | AnyStr) -> AnyStr:
    """The path of ``sibling`` in the directory of ``path`` (give it ``__file__``)."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), sibling)


class InsensitiveDict(MutableMapping[Any, _V]):
    """A dict whose ``str`` and ``bytes`` keys match whatever their case.

    Args:
        dict: Items to start with.
        preserve: True (the default): keys are listed as they were last set; false: in
            lower case.
    """

    # Folded key to (key as shown, value). Declared here: the constructor's argument is
    # called ``dict``, as Twisted's.
    data: dict[Any, tuple[Any, _V]]

    def __init__(self, dict: Mapping[Any, _V] | None = None, preserve: int = 1) -> None:
        self.data = {}
        self.preserve = preserve
        if dict:
            self.update(dict)

    @staticmethod
    def _fold(key: Any) -> Any:
        return key.lower() if isinstance(key, str | bytes) else key

    def _shown(self, key: Any) -> Any:
        return key if self.preserve else self._fold(key)

    def __getitem__(self, key: Any) -> _V:
        return self.data[self._fold(key)][1]

    def __setitem__(self, key: Any, value: _V) -> None:
        self.data[self._fold(key)] = (self._shown(key), value)

    def __delitem__(self, key: Any) -> None:
        del self.data[self._fold(key)]

    def __iter__(self) -> Iterator[Any]:
        return (shown for shown, _ in self.data.values())

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return self._fold(key) in self.data

    def copy(self) -> InsensitiveDict[_V]:
        """A new dict with the same items."""
        return InsensitiveDict(dict(self.items()), self.preserve)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"

    __str__ = __repr__


def uniquify(lst: Iterable[_T]) -> list[_T]:
    """The items of ``lst`` without repeats, in their first order."""
    return list(dict.fromkeys(lst))


def padTo(n: int, seq: Sequence[_T], default: Any = None) -> list[Any]:
    """``seq`` as a new list of ``n`` items, filled with ``default``.

    Raises:
        ValueError: ``seq`` has more than ``n`` items.
    """
    if len(seq) > n:
        raise ValueError(f"{len(seq)} elements is more than {n}.")
    return [*seq, *[default] * (n - len(seq))]


def nameToLabel(mname: str) -> str:
    """A label made of an identifier: ``"fooBarBaz"`` → ``"Foo Bar Baz"``,
    ``"getHTTPResponse"`` → ``"Get HTTP Response"``.

    A name that starts with a capital gets no leading space (``"HTTPServer"`` → ``"HTTP
    Server"``; Twisted's answers ``" HTTP Server"``).
    """
    words: list[str] = []
    word = ""
    for i, letter in enumerate(mname):
        if letter.isupper() and word:
            following = mname[i + 1 : i + 2]
            ends_acronym = word[-1].isupper() and following.islower()
            if not word[-1].isupper() or ends_acronym:
                words.append(word)
                word = ""
        word += letter
    words.append(word)
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def searchupwards(start: str, files: Sequence[str] = (), dirs: Sequence[str] = ()) -> str | None:
    """The first directory at or above ``start`` holding every one of ``files`` and
    ``dirs`` (with a trailing separator), or None."""
    here = os.path.abspath(start)
    while True:
        candidate = here.rstrip(os.sep) + os.sep
        if all(os.path.exists(candidate + f) for f in files) and all(
            os.path.isdir(candidate + d) for d in dirs
        ):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def untilConcludes(f: Callable[..., _T], *a: Any, **kw: Any) -> _T:
    """Call ``f(*a, **kw)`` again for as long as it fails with ``EINTR``."""
    while True:
        try:
            return f(*a, **kw)
        except OSError as e:
            if e.errno != errno.EINTR:
                raise


class FancyEqMixin:
    """Equality by the attributes named in ``compareAttributes`` (identity when none are),
    between instances of the same class or of a subclass."""

    compareAttributes: ClassVar[Sequence[str]] = ()

    def __eq__(self, other: object) -> bool:
        if not self.compareAttributes:
            return self is other
        if isinstance(self, other.__class__):
            return all(
                getattr(self, name) == getattr(other, name) for name in self.compareAttributes
            )
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal


class FancyStrMixin:
    """A ``str()`` (and ``repr()``) of ``<ClassName attr=value ...>``.

    ``showAttributes`` names what is shown: an attribute's name (shown with ``repr``), a
    ``(name, function)`` pair (shown as the function formats it) or a ``(name, label,
    "%-format")`` triple; ``fancybasename``, when set, replaces the class's name.
    """

    showAttributes: Sequence[str | tuple[str, Callable[[Any], str]] | tuple[str, str, str]] = ()

    def __str__(self) -> str:
        parts = ["<", getattr(self, "fancybasename", type(self).__name__)]
        for shown in self.showAttributes:
            if isinstance(shown, str):
                parts.append(f" {shown}={getattr(self, shown)!r}")
            elif len(shown) == 2:
                parts.append(f" {shown[0]}=" + shown[1](getattr(self, shown[0])))
            else:
                parts.append(f" {shown[1]}=" + shown[2] % (getattr(self, shown[0]),))
        parts.append(">")
        return "".join(parts)

    __repr__ = __str__


def uidFromString(uidString: str) -> int:
    """A user id given as a number or a user's name.

    Raises:
        KeyError: No such user.
    """
    try:
        return int(uidString)
    except ValueError:
        import pwd

        return pwd.getpwnam(uidString).pw_uid


def gidFromString(gidString: str) -> int:
    """A group id given as a number or a group's name.

    Raises:
        KeyError: No such group.
    """
    try:
        return int(gidString)
    except ValueError:
        import grp

        return grp.getgrnam(gidString).gr_gid


def switchUID(uid: int | None, gid: int | None, euid: bool = False) -> None:
    """Run as user ``uid`` and group ``gid`` from now on (either may be None: unchanged).

    With a user, its supplementary groups become those the system lists for it
    (``initgroups``). ``euid`` true changes only the effective ids, so that root can be
    regained. Asking for the user already in force warns rather than fails.
    """
    setuid, setgid, getuid = (
        (os.seteuid, os.setegid, os.geteuid) if euid else (os.setuid, os.setgid, os.getuid)
    )
    if gid is not None:
        setgid(gid)
    if uid is None:
        return
    if uid == getuid():
        which = "euid" if euid else "uid"
        warnings.warn(
            f"tried to drop privileges and set{which} {uid} but {which} is already "
            f"{getuid()}; should we be root? Continuing.",
            stacklevel=2,
        )
        return
    _init_groups(uid, gid if gid is not None else os.getgid())
    setuid(uid)


def _init_groups(uid: int, gid: int) -> None:
    """Take ``uid``'s supplementary groups (needs root; without, keep the current ones)."""
    import pwd

    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        os.setgroups([gid])  # a user with no name has no groups to look up
        return
    os.initgroups(name, gid)


def runAsEffectiveUser(
    euid: int, egid: int, function: Callable[..., _T], *args: Any, **kwargs: Any
) -> _T:
    """Call ``function(*args, **kwargs)`` with effective ids ``euid``/``egid``, then
    restore the ones in force before (with as few ``seteuid``/``setegid`` calls as can
    do)."""
    uid, gid = os.geteuid(), os.getegid()
    if (uid, gid) == (euid, egid):
        return function(*args, **kwargs)
    changes_user = uid != euid or gid != egid
    if uid != 0 and changes_user:
        os.seteuid(0)
    if gid != egid:
        os.setegid(egid)
    if euid != 0 and changes_user:
        os.seteuid(euid)
    try:
        return function(*args, **kwargs)
    finally:
        if euid != 0 and changes_user:
            os.seteuid(0)
        if gid != egid:
            os.setegid(gid)
        if uid != 0 and changes_user:
            os.seteuid(uid)
