"""treadle.python.filepath: Twisted's FilePath, checked against Twisted's own on a real tree.

The differential tests run the same operations through ``twisted.python.filepath`` and
treadle's and compare what comes out (values, or the exception's type). The others cover
what treadle does differently on purpose: NUL names, segment-wise containment, link
cycles in ``walk``, durable and tidy ``setContent``.
"""

from __future__ import annotations

import errno
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from twisted.python import filepath as twisted_filepath

from treadle.python import filepath
from treadle.python.filepath import FilePath, InsecurePath, LinkError, UnlistableError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``a/b/`` (empty), ``a/f.txt``, ``a/g.html``, ``top.txt``."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "f.txt").write_bytes(b"hello\n")
    (tmp_path / "a" / "g.html").write_bytes(b"<p>")
    (tmp_path / "top.txt").write_bytes(b"top")
    return tmp_path


def outcome(action: Callable[[], Any]) -> Any:
    """The value of ``action()`` in a comparable form, or the name of what it raised."""
    try:
        value = action()
    except Exception as e:  # the type is the outcome being compared
        return type(e).__name__
    return comparable(value)


def comparable(value: Any) -> Any:
    """FilePaths (of either module) as their paths; sequences item by item."""
    if isinstance(value, (list, tuple)):
        return [comparable(item) for item in value]
    if hasattr(value, "path") and hasattr(value, "child"):
        return ("FilePath", value.path)
    return value


OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "repr": lambda fp: repr(fp),
    "child": lambda fp: fp.child("a"),
    "child bytes": lambda fp: fp.child(b"a"),
    "child dotdot": lambda fp: fp.child(".."),
    "child slash": lambda fp: fp.child("a/b"),
    "child dot": lambda fp: fp.child("."),
    "child empty": lambda fp: fp.child(""),
    "preauthChild": lambda fp: fp.preauthChild("a/b"),
    "preauthChild out": lambda fp: fp.preauthChild("../elsewhere"),
    "preauthChild absolute": lambda fp: fp.preauthChild("/etc"),
    "descendant": lambda fp: fp.descendant(["a", "b"]),
    "segmentsFrom": lambda fp: fp.child("a").child("b").segmentsFrom(fp),
    "segmentsFrom self": lambda fp: fp.segmentsFrom(fp),
    "segmentsFrom stranger": lambda fp: fp.segmentsFrom(fp.child("a")),
    "children": lambda fp: sorted(c.basename() for c in fp.child("a").children()),
    "children of a file": lambda fp: fp.child("top.txt").children(),
    "children missing": lambda fp: fp.child("nope").children(),
    "walk": lambda fp: sorted(p.path for p in fp.walk()),
    "walk pruned": lambda fp: sorted(p.path for p in fp.walk(lambda p: p.basename() != "a")),
    "getContent": lambda fp: fp.child("a").child("f.txt").getContent(),
    "getsize": lambda fp: fp.child("a").child("f.txt").getsize(),
    "getsize missing": lambda fp: fp.child("zz").getsize(),
    "exists": lambda fp: (fp.child("a").exists(), fp.child("zz").exists()),
    "isdir isfile": lambda fp: (fp.child("a").isdir(), fp.child("a").isfile(), fp.isabs()),
    "siblingExtensionSearch": lambda fp: fp.child("a").child("f").siblingExtensionSearch(".txt"),
    "siblingExtensionSearch star": lambda fp: fp.child("a").child("g").siblingExtensionSearch("*"),
    "siblingExtensionSearch none": lambda fp: fp.child("a").child("x").siblingExtensionSearch(".y"),
    "siblingExtensionSearch self": lambda fp: fp.child("top.txt").siblingExtensionSearch(""),
    "childSearchPreauth": lambda fp: fp.childSearchPreauth("nope", "a/f.txt"),
    "siblingExtension": lambda fp: fp.child("top").siblingExtension(".txt"),
    "sibling": lambda fp: fp.child("a").sibling("top.txt"),
    "sibling bad": lambda fp: fp.child("a").sibling("../x"),
    "splitext": lambda fp: fp.child("a").child("f.txt").splitext(),
    "basename dirname": lambda fp: (fp.child("a").basename(), fp.child("a").dirname()),
    "parents": lambda fp: list(fp.child("a").parents())[:2],
    "asBytesMode": lambda fp: fp.asBytesMode(),
    "asTextMode": lambda fp: fp.asBytesMode().asTextMode(),
    "globChildren": lambda fp: sorted(p.path for p in fp.child("a").globChildren("*.txt")),
    "globChildren bytes": lambda fp: [p.path for p in fp.child("a").globChildren(b"*.html")],
    "permissions": lambda fp: fp.child("top.txt").getPermissions().shorthand(),
    "equality": lambda fp: (fp.child("a") == fp.child("a"), fp.child("a") != fp),
    "ordering": lambda fp: (fp < fp.child("a"), fp.child("b") > fp.child("a")),
    "realpath plain": lambda fp: fp.child("a").realpath(),
    "makedirs existing": lambda fp: fp.child("a").makedirs(),
    "makedirs existing ok": lambda fp: fp.child("a").makedirs(ignoreExistingDirectory=True),
    "createDirectory existing": lambda fp: fp.child("a").createDirectory(),
    "open missing": lambda fp: fp.child("zz").open(),
    "root parent": lambda fp: type(fp)("/").parent(),
    "sep": lambda fp: (fp.sep, fp.asBytesMode().sep),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_same_as_twisted(tree: Path, name: str) -> None:
    operation = OPERATIONS[name]

    def run(module: ModuleType) -> Any:
        return outcome(lambda: operation(module.FilePath(str(tree))))

    assert run(filepath) == run(twisted_filepath)


def test_permissions_match_twisted(tree: Path) -> None:
    path = tree / "top.txt"
    for mode in (0o600, 0o751, 0o044):
        path.chmod(mode)
        ours = FilePath(str(path)).getPermissions()
        theirs = twisted_filepath.FilePath(str(path)).getPermissions()
        assert ours.shorthand() == theirs.shorthand()
        assert repr(ours) == repr(theirs)
        assert repr(ours.user) == repr(theirs.user)
    assert filepath.Permissions(0o751) == filepath.Permissions(0o751)
    assert filepath.Permissions(0o751) != filepath.Permissions(0o750)
    assert filepath.RWX(True, False, True).shorthand() == "r-x"


# -- what treadle does better ---------------------------------------------------------------------


def test_child_refuses_nul(tree: Path) -> None:
    with pytest.raises(InsecurePath, match="NUL"):
        FilePath(str(tree)).child("a\0b")
    with pytest.raises(InsecurePath):
        FilePath(str(tree)).child(b"a\0b")


def test_containment_is_by_whole_segments(tree: Path) -> None:
    base = FilePath(str(tree / "a"))
    (tree / "ab").mkdir()
    # Twisted's prefix test lets "/x/a" reach "/x/ab" through "../ab".
    with pytest.raises(InsecurePath):
        base.preauthChild("../ab")
    with pytest.raises(ValueError):
        FilePath(str(tree / "ab" / "c")).segmentsFrom(base)
    assert FilePath("/").child("etc") == FilePath("/etc")
    assert FilePath("/").preauthChild("etc/hosts") == FilePath("/etc/hosts")


def test_walk_refuses_link_cycles(tree: Path) -> None:
    (tree / "a" / "up").symlink_to(tree)
    with pytest.raises(LinkError):
        list(FilePath(str(tree)).walk())
    (tree / "a" / "up").unlink()
    # A cycle between siblings, which a check against ancestors alone never sees.
    (tree / "x").mkdir()
    (tree / "y").mkdir()
    (tree / "x" / "to_y").symlink_to(tree / "y")
    (tree / "y" / "to_x").symlink_to(tree / "x")
    with pytest.raises(LinkError):
        list(FilePath(str(tree)).walk())


def test_walk_follows_links_that_make_no_cycle(tree: Path) -> None:
    (tree / "elsewhere").mkdir()
    (tree / "elsewhere" / "e.txt").write_bytes(b"e")
    (tree / "a" / "link").symlink_to(tree / "elsewhere")
    seen = [p.path for p in FilePath(str(tree / "a")).walk()]
    assert str(tree / "a" / "link" / "e.txt") in seen


def test_set_content_replaces_atomically_and_cleans_up(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = FilePath(str(tree / "top.txt"))
    assert target.getsize() == 3
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target.setContent(b"new contents")
    assert target.getContent() == b"new contents"
    assert target.getsize() == len(b"new contents")  # the cached stat was dropped
    assert synced
    assert sorted(os.listdir(tree)) == ["a", "top.txt"]

    def broken_replace(source: str, destination: str) -> None:
        raise OSError(errno.EIO, "disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        target.setContent(b"lost")
    assert target.getContent() == b"new contents"
    assert sorted(os.listdir(tree)) == ["a", "top.txt"]  # no temporary file left


def test_set_content_with_bytes_path_and_text_extension(tree: Path) -> None:
    target = FilePath(os.fsencode(tree / "fresh.bin"))
    target.setContent(b"\x00\x01", ext=".tmp")
    assert (tree / "fresh.bin").read_bytes() == b"\x00\x01"


def test_glob_characters_in_the_directory_are_literal(tmp_path: Path) -> None:
    odd = tmp_path / "[x]"
    odd.mkdir()
    (odd / "one.txt").write_bytes(b"1")
    found = FilePath(str(odd)).globChildren("*.txt")
    assert found == [FilePath(str(odd / "one.txt"))]


def test_text_and_bytes_paths_are_unequal_not_an_error(tree: Path) -> None:
    text = FilePath(str(tree))
    assert text != text.asBytesMode()
    assert len({text, text.asBytesMode(), FilePath(str(tree))}) == 2


def test_a_file_path_is_path_like(tree: Path) -> None:
    fp = FilePath(str(tree)).child("top.txt")
    with open(fp, "rb") as f:
        assert f.read() == b"top"
    assert os.fspath(fp.asBytesMode()) == os.fsencode(tree / "top.txt")
    assert FilePath(tree) == FilePath(str(tree))  # pathlib in, too


# -- files: making, changing, moving ---------------------------------------------------------------


def test_open_is_binary_and_always_create_is_exclusive(tree: Path) -> None:
    fp = FilePath(str(tree / "new.txt"))
    with fp.open("w") as f:
        f.write(b"abc")
    with fp.open() as f:
        assert f.read() == b"abc"
    fp.requireCreate()
    with pytest.raises(FileExistsError):
        fp.open("w")
    with pytest.raises(ValueError, match="Appending"):
        fp.open("a")
    sibling = fp.temporarySibling(".part")
    assert sibling.alwaysCreate and sibling.basename().endswith("new.txt.part")
    assert sibling.parent() == fp.parent() and not sibling.exists()
    with sibling.open() as f:
        f.write(b"x")
    with pytest.raises(FileExistsError):  # as in Twisted: it stays create-only
        sibling.getContent()
    assert FilePath(sibling.path).getContent() == b"x"


def test_stat_is_cached_until_changed(tree: Path) -> None:
    fp = FilePath(str(tree / "top.txt"))
    assert fp.getsize() == 3
    (tree / "top.txt").write_bytes(b"longer")
    assert fp.getsize() == 3  # cached, as in Twisted
    fp.changed()
    assert fp.getsize() == 6
    (tree / "top.txt").unlink()
    assert fp.exists()  # still cached
    fp.restat(reraise=False)
    assert not fp.exists()
    with pytest.raises(FileNotFoundError):
        fp.restat()
    assert "_statinfo" not in pickle.loads(pickle.dumps(fp)).__dict__


def test_stat_accessors(tree: Path) -> None:
    fp = FilePath(str(tree / "a" / "f.txt"))
    st = os.stat(tree / "a" / "f.txt")
    assert fp.getModificationTime() == st.st_mtime and fp.getmtime() == int(st.st_mtime)
    assert fp.getAccessTime() == st.st_atime and fp.getStatusChangeTime() == st.st_ctime
    assert (fp.getInodeNumber(), fp.getDevice()) == (st.st_ino, st.st_dev)
    assert fp.getNumberOfHardLinks() == 1
    assert (fp.getUserID(), fp.getGroupID()) == (st.st_uid, st.st_gid)
    fp.chmod(0o640)
    assert stat.S_IMODE(os.stat(fp.path).st_mode) == 0o640
    assert fp.getPermissions().shorthand() == "rw-r-----"
    assert not fp.isBlockDevice() and not fp.isSocket()


def test_touch_creates_and_updates(tree: Path) -> None:
    fp = FilePath(str(tree / "touched"))
    fp.touch()
    assert fp.isfile() and fp.getsize() == 0
    os.utime(fp.path, (0, 0))
    fp.touch()
    assert fp.getModificationTime() > 0


def test_remove_deletes_trees_but_not_through_links(tree: Path) -> None:
    keep = tree / "keep"
    keep.mkdir()
    (keep / "k.txt").write_bytes(b"k")
    (tree / "a" / "link").symlink_to(keep)
    FilePath(str(tree / "a")).remove()
    assert not (tree / "a").exists()
    assert (keep / "k.txt").read_bytes() == b"k"


def test_copy_to_copies_files_and_trees(tree: Path) -> None:
    source = FilePath(str(tree / "a"))
    destination = FilePath(str(tree / "copy"))
    source.copyTo(destination)
    assert sorted(destination.listdir()) == ["b", "f.txt", "g.html"]
    assert destination.child("f.txt").getContent() == b"hello\n"
    (tree / "a" / "lnk").symlink_to("f.txt")
    source.child("lnk").copyTo(destination.child("lnk"), followLinks=False)
    assert os.readlink(tree / "copy" / "lnk") == "f.txt"
    with pytest.raises(OSError):
        source.child("missing").copyTo(destination.child("x"))


def test_move_to_renames_and_crosses_file_systems(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FilePath(str(tree / "top.txt")).moveTo(FilePath(str(tree / "moved.txt")))
    assert (tree / "moved.txt").read_bytes() == b"top" and not (tree / "top.txt").exists()

    real_rename = os.rename
    calls: list[Any] = []

    def rename(source: Any, destination: Any) -> None:
        calls.append(source)
        if len(calls) == 1:  # the first, direct rename: pretend another file system
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    FilePath(str(tree / "a")).moveTo(FilePath(str(tree / "b")))
    assert (tree / "b" / "f.txt").read_bytes() == b"hello\n"
    assert not (tree / "a").exists()
    assert sorted(os.listdir(tree)) == ["b", "moved.txt"]  # no temporary siblings left


def test_children_errors(tree: Path) -> None:
    with pytest.raises(UnlistableError) as caught:
        FilePath(str(tree / "top.txt")).children()
    assert caught.value.errno == errno.ENOTDIR
    assert isinstance(caught.value.originalException, NotADirectoryError)


def test_realpath_and_link_cycles(tree: Path) -> None:
    (tree / "link").symlink_to(tree / "a" / "f.txt")
    assert FilePath(str(tree / "link")).realpath() == FilePath(str(tree / "a" / "f.txt"))
    (tree / "loop1").symlink_to(tree / "loop2")
    (tree / "loop2").symlink_to(tree / "loop1")
    with pytest.raises(LinkError):
        FilePath(str(tree / "loop1")).realpath()
    target = FilePath(str(tree / "a" / "f.txt"))
    target.linkTo(FilePath(str(tree / "made")))
    assert os.readlink(tree / "made") == str(tree / "a" / "f.txt")
    assert FilePath(str(tree / "made")).islink()


def test_child_mode_follows_the_name(tree: Path) -> None:
    text = FilePath(str(tree))
    assert isinstance(text.child(b"a").path, bytes)
    assert isinstance(text.asBytesMode().child("a").path, str)
    assert text.asBytesMode().child("a").path == str(tree / "a")


def test_twisted_private_bytes_path(tree: Path) -> None:
    # Twisted's test suites hand FilePath._asBytesPath() to resources; it is kept for them.
    text = FilePath(str(tree))
    assert text._asBytesPath() == os.fsencode(tree)
    assert FilePath(os.fsencode(tree))._asBytesPath() == os.fsencode(tree)
