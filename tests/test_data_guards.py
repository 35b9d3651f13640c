"""Import sources from strangers (issue 17): only regular files are copied (links skipped and
listed), SOURCE must be a regular file or a folder, deep trees are refused without a RecursionError."""
import os

import pytest

from convzoo.data import catsdogs, guards
from convzoo.errors import DataError
from test_data_folders import SIZES, kaggle_files, write_files


def test_link_to_dev_zero_is_skipped_and_listed(tmp_path):
    """cat.1.jpg -> /dev/zero filled a 1 GB disk in 2.9 s: the copy followed the link."""
    src = write_files(tmp_path / "kaggle", kaggle_files())
    os.remove(src / "cat.1.jpg")
    os.symlink("/dev/zero", src / "cat.1.jpg")
    os.symlink(src / "cat.0.jpg", src / "cat.99.jpg")  # a link to a good image is not read either
    report = catsdogs.import_source(src, tmp_path / "out", **SIZES)
    skipped = dict(report["skipped"])
    assert skipped["cat.1.jpg"] == skipped["cat.99.jpg"] == "a symbolic link, not followed"
    assert sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file()) < 2**20


def test_fifo_source_is_refused_without_blocking(tmp_path):
    """A FIFO named x.zip as SOURCE blocked forever."""
    os.mkfifo(tmp_path / "x.zip")
    with pytest.raises(DataError, match="not a regular file or folder"):
        catsdogs.import_source(tmp_path / "x.zip", tmp_path / "out")


def test_fifo_inside_a_source_folder_is_skipped(tmp_path):
    src = write_files(tmp_path / "kaggle", kaggle_files())
    os.mkfifo(src / "dog.77.jpg")
    report = catsdogs.import_source(src, tmp_path / "out", **SIZES)
    assert dict(report["skipped"])["dog.77.jpg"].startswith("not a regular file")


def test_deep_source_folder_is_one_error(tmp_path, monkeypatch):
    """A 1,200-deep folder raised RecursionError in os.walk (the depth cap is lowered here)."""
    monkeypatch.setattr(guards, "MAX_DEPTH", 5)
    path = tmp_path / "deep"
    for _ in range(8):
        path = path / "d"
    path.mkdir(parents=True)
    with pytest.raises(DataError, match="nest deeper than 5 levels"):
        catsdogs.import_source(tmp_path / "deep", tmp_path / "out")


def test_copy_regular_refuses_links_and_oversize(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    os.symlink(tmp_path / "a", tmp_path / "link")
    with pytest.raises(OSError):
        guards.copy_regular(tmp_path / "link", tmp_path / "b", 1000)
    with pytest.raises(ValueError, match="larger than"):
        guards.copy_regular(tmp_path / "a", tmp_path / "c", 50)
