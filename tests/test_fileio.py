"""fileio.atomic_folder, which export (SavedModel) and every data import (folders.building) use:
whatever is at the target is moved aside, never followed, and nothing is left beside it."""
import os

import pytest

from convzoo.data import folders
from convzoo.fileio import atomic_folder


def _fill(tmp):
    with open(os.path.join(tmp, "new.txt"), "w") as f:
        f.write("new")


def _other_folder(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    return other


@pytest.mark.parametrize("stage", [atomic_folder, folders.building])
@pytest.mark.parametrize("there", ["nothing", "folder", "file", "link to a folder", "dangling link"])
def test_target_replaced_never_followed_nothing_left_beside(tmp_path, stage, there):
    other = _other_folder(tmp_path)
    parent = tmp_path / "out"
    parent.mkdir()
    target = parent / "target"
    if there == "folder":
        target.mkdir()
        (target / "old.txt").write_text("old")
    elif there == "file":
        target.write_text("old")
    elif there == "link to a folder":
        target.symlink_to(other)
    elif there == "dangling link":
        target.symlink_to(tmp_path / "missing")
    with stage(target) as tmp:
        _fill(tmp)
    assert not target.is_symlink() and sorted(os.listdir(target)) == ["new.txt"]
    assert os.listdir(parent) == ["target"]  # no .tmp, no .old
    assert sorted(os.listdir(other)) == ["keep.txt"] and (other / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("stage", [atomic_folder, folders.building])
def test_failure_in_the_block_leaves_the_target_as_it_was(tmp_path, stage):
    other = _other_folder(tmp_path)
    target = tmp_path / "target"
    target.symlink_to(other)
    with pytest.raises(ValueError):
        with stage(target) as tmp:
            _fill(tmp)
            raise ValueError("stop")
    assert os.readlink(target) == str(other)
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "target"]


def test_check_output_refuses_a_dangling_link_without_overwrite(tmp_path):
    from convzoo.errors import ConvzooError
    from convzoo.fileio import check_output

    link = tmp_path / "out.h5"
    link.symlink_to(tmp_path / "nowhere.h5")
    with pytest.raises(ConvzooError, match="already exists; pass --overwrite"):
        check_output(link)
    assert check_output(link, overwrite=True) == str(link)
