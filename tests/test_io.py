"""dmc.io: atomic writes (modes, file-system errors, no temporary file left) and reading user files as data."""

import errno
import os
import stat

import pytest

from dmc.errors import InvalidInputError
from dmc.io import (
    WriteError,
    atomic_write,
    atomic_write_text,
    read_json,
    read_text,
    read_yaml,
)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_new_files_get_the_umask_mode_not_0600(tmp_path, umask):
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x")) == 0o640
    (tmp_path / "b.txt").write_text("old")
    (tmp_path / "b.txt").chmod(0o604)
    assert _mode(atomic_write_text(tmp_path / "b.txt", "new")) == 0o604  # a replaced file keeps its mode
    assert (tmp_path / "b.txt").read_text() == "new"


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path):
    (tmp_path / "keep.txt").write_text("old")

    def full_disk(tmp):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    with pytest.raises(WriteError) as info:
        atomic_write(tmp_path / "keep.txt", full_disk)
    assert str(info.value).startswith(f"cannot write {tmp_path / 'keep.txt'}: No space left on device (hint:")
    assert info.value.exit_code == 1
    assert (tmp_path / "keep.txt").read_text() == "old"  # what was there is not lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_other_errors_pass_through_and_leave_nothing(tmp_path):
    def bug(tmp):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "x", bug)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_or_a_file_on_the_path(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(InvalidInputError, match="dir: is a folder, not a file"):
        atomic_write_text(tmp_path / "dir", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match=r"cannot write .*file/sub/x\.txt: Not a directory \(.*file/sub\)"):
        atomic_write_text(tmp_path / "file" / "sub" / "x.txt", "x")


def test_read_text_refuses_folders_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(InvalidInputError, match="is a folder, not a spec"):
        read_text(tmp_path, "spec")
    with pytest.raises(InvalidInputError, match="cannot read spec: No such file"):
        read_text(tmp_path / "missing", "spec")
    (tmp_path / "latin1.yaml").write_bytes("name: caf\u00e9".encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"latin1.yaml: not a text file \(invalid UTF-8 at byte 9\)"):
        read_text(tmp_path / "latin1.yaml")


def test_yaml_duplicate_keys_are_refused_with_their_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb:\n  x: 1\n  x: 2\n")
    with pytest.raises(InvalidInputError, match=r"c.yaml: line 4, column 3: duplicate key 'x'"):
        read_yaml(path)
    path.write_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")  # merge keys may be overridden
    assert read_yaml(path)["other"] == {"x": 3, "y": 2}
    path.write_text("a: 1\nb: 2\n")
    assert read_yaml(path) == {"a": 1, "b": 2}


def test_deeply_nested_yaml_and_json_are_refused(tmp_path):
    (tmp_path / "d.yaml").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(InvalidInputError, match="d.yaml: nested too deeply"):
        read_yaml(tmp_path / "d.yaml")
    (tmp_path / "d.json").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(InvalidInputError, match="d.json: nested too deeply"):
        read_json(tmp_path / "d.json")
    (tmp_path / "e.json").write_text('{"a": 1,}')
    with pytest.raises(InvalidInputError, match="e.json: invalid JSON at line 1, column 9"):
        read_json(tmp_path / "e.json")


def _alias_bomb(levels: int = 60) -> str:
    """A mapping whose last list expands to 2**levels strings: each level lists the previous one twice."""
    return "\n".join(["a0: &a0 [lol, lol]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)])


def test_yaml_alias_bombs_and_self_containing_aliases_are_refused(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    with pytest.raises(InvalidInputError, match=r"bomb.yaml: line \d+, column \d+: more than 100000 values once its "
                                                r"aliases are expanded \(an alias bomb\?\)"):
        read_yaml(path)
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(InvalidInputError, match="bomb.yaml: line 1, column 4: an alias inside the value it names"):
        read_yaml(path)
    path.write_text(_alias_bomb(levels=10))  # 2**10 values: aliases as such are fine
    assert len(read_yaml(path)["a9"]) == 2 and read_yaml(path)["a9"][0][0][0][0][0][0][0][0][0] == ["lol", "lol"]
