"""Import sources from strangers (issue 17): only regular files are copied (links skipped and
listed), SOURCE must be a regular file or a folder, deep trees are refused without a RecursionError,
CIFAR pickles build nothing larger than their bytes. Memory cases run in a subprocess under RLIMIT_AS."""
import io
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convzoo.data import catsdogs, cifar, folders, guards, imported
from convzoo.errors import DataError
from conftest import invoke
from test_data_folders import SIZES, batch_files, cifar_tree, jpeg_bytes, kaggle_files, tar_of, write_files, zip_of

ROOT = Path(__file__).resolve().parents[1]
MEMORY = 2**30  # RLIMIT_AS for the memory cases


def limited(code, *args, mem=MEMORY, timeout=120, cwd=None):
    """Run python -c code in a fresh process under an address-space limit."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit, env=env, cwd=cwd)


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


# ---------------------------------------------------------------- CIFAR pickles


def hostile_pickles():
    """name -> a small pickle built only from names the CIFAR unpickler allows."""
    size = struct.pack("<i", 400_000_000)
    text = b"c_codecs\nencode\nq\x00X" + struct.pack("<I", 2**20) + b"a" * 2**20 + b"q\x01X\x06\x00\x00\x00latin1q\x02"
    return {
        # list(bytes(4e8)): 43 bytes, 3.1 GB before a MemoryError
        "list-of-bytes": b"\x80\x02cbuiltins\nlist\ncbuiltins\nbytes\nJ" + size + b"\x85R\x85R.",
        "bytes-as-data": b"\x80\x02}U\x04datac__builtin__\nbytes\nJ" + size + b"\x85Rs.",
        # a bytes object declared 3 GB long: the C unpickler allocates the declared size first
        "binbytes8": b"\x80\x04\x8e" + struct.pack("<Q", 3 * 2**30) + b"abc.",
        # memo index 2**32 - 1: the C unpickler grows (and zeroes) its memo up to it
        "memo-index": b"\x80\x02Nr\xff\xff\xff\xff.",
        # one 1 MB str encoded 2,000 times: 2 GB from a 1 MB file
        "encode-again": b"\x80\x02(" + text + b"h\x00h\x01h\x02\x86R" * 2000 + b"l.",
        # numpy's own code on pickled state: an object dtype, fields, an array larger than its bytes
        "dtype-object": b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R.",
        "dtype-fields": b"\x80\x02cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|N(U\x01at}U\x01a"
                        b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87RK\x00\x86sK\x08J\xff\xff\xff\xffK\x00tb.",
        "array-shape": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
                       b"(K\x01J\x00\xca\x9a;\x85cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R\x89U\x03abctb.",
    }


def test_cifar_pickle_bombs_are_refused_in_a_few_mb(tmp_path):
    """A 43-byte pickle of list(bytes(4e8)) reached 3.1 GB: each bomb is refused before it allocates."""
    for name, raw in hostile_pickles().items():
        (tmp_path / name).write_bytes(raw)
    code = ("import json, resource, sys\nfrom convzoo.data import cifar\nfrom convzoo.errors import DataError\n"
            "out = {}\nfor path in sys.argv[1:]:\n"
            "    try:\n        with open(path, 'rb') as f:\n            cifar.read_batch(f, path.rsplit('/', 1)[1])\n"
            "        out[path] = 'LOADED'\n"
            "    except DataError as e:\n        out[path] = str(e)\n"
            # VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's peak across exec (the suite's
            # pytest with TensorFlow loaded is over 1 GB)
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "out['rss_mb'] = int(hwm.split()[1]) // 1024\n"
            "print(json.dumps(out))\n")
    res = limited(code, *sorted(tmp_path.iterdir()))
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out.pop("rss_mb") < 400
    for path, msg in out.items():
        name = Path(path).name
        assert msg.startswith(f"{name}: not a CIFAR-10 batch"), msg
        assert "refused:" in msg or "expected 3221225472 bytes" in msg, msg
        assert "\n" not in msg and "MemoryError" not in msg


def test_cifar_import_of_a_pickle_bomb_is_one_line(tmp_path):
    """The same through `convzoo data import cifar10`, as a user runs it."""
    files, _ = batch_files(prefix="")
    src = write_files(tmp_path / "src", files)
    (src / "data_batch_2").write_bytes(hostile_pickles()["list-of-bytes"])
    code = "from convzoo.cli import main\nmain()"
    res = limited(code, "data", "import", "cifar10", src, "--data-dir", tmp_path / "d")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.strip().count("\n") == 0 and "data_batch_2: not a CIFAR-10 batch: refused:" in res.stderr
    assert not (tmp_path / "d" / "cifar10").exists()


def py2_batch(n, seed):
    """A batch as the official files hold it: pickled by Python 2 (str, not unicode) and numpy 1."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    raw = (b"\x80\x02}q\x01(U\x0bbatch_labelq\x02U\rtesting batchq\x03U\x04dataq\x04"
           b"cnumpy.core.multiarray\n_reconstruct\nq\x05cnumpy\nndarray\nq\x06K\x00\x85U\x01b\x87Rq\x07"
           b"(K\x01K" + bytes([n]) + b"M\x00\x0c\x86cnumpy\ndtype\nq\x08U\x02u1K\x00K\x01\x87Rq\t"
           b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + struct.pack("<I", data.size)
           + data.tobytes() + b"tbU\x06labelsq\n]q\x0b(" + b"".join(b"K" + bytes([v]) for v in labels)
           + b"eu.")
    return raw, data, labels


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_cifar_good_batches_still_load(protocol):
    raw, data, labels = py2_batch(5, 1)
    x, y = cifar.read_batch(io.BytesIO(raw), "py2")
    assert list(y) == labels and np.array_equal(x.transpose(0, 3, 1, 2).reshape(5, -1), data)
    import pickle

    d = {b"data": data, b"labels": labels, b"batch_label": b"", b"filenames": [b"a.png"] * 5}
    x, y = cifar.read_batch(io.BytesIO(pickle.dumps(d, protocol=protocol)), "py3")
    assert list(y) == labels and np.array_equal(x.transpose(0, 3, 1, 2).reshape(5, -1), data)


# ---------------------------------------------------------------- the byte budget of one import


def class_files(n=12):
    return {f"shapes/{c}/{i:02d}.jpg": jpeg_bytes(k * 100 + i) for k, c in enumerate(("a", "b")) for i in range(n)}


def source_of(kind, tmp_path, files):
    if kind == "folder":
        return write_files(tmp_path / "src", files) / "shapes"
    return (zip_of if kind == "zip" else tar_of)(tmp_path / f"shapes.{kind}", files)


def leftovers(parent):
    return sorted(p.name for p in Path(parent).iterdir()) if Path(parent).exists() else []


@pytest.mark.parametrize("kind", ["folder", "zip", "tar.gz"])
def test_import_over_its_byte_budget_stops_and_leaves_nothing(tmp_path, monkeypatch, kind):
    """A source whose files add up past the budget (here a 10 KB cap) stops the import with one line."""
    src = source_of(kind, tmp_path, class_files())
    monkeypatch.setattr(guards, "MAX_IMPORT_BYTES", 10_000)
    with pytest.raises(DataError, match=r"import stopped: the source's files take over 10 KB \(the 10 KB cap "
                                        r"on one import\); nothing was imported") as e:
        imported.import_source(src, tmp_path / "d" / "shapes")
    assert "\n" not in str(e.value)
    assert leftovers(tmp_path / "d") == []  # no staging folder, no target
    monkeypatch.setattr(guards, "MAX_IMPORT_BYTES", 10 * 2**20)
    assert imported.import_source(src, tmp_path / "d" / "shapes")["written"]["train"] > 0


def test_import_budget_follows_free_space(tmp_path, monkeypatch):
    """The 1 GB disk the review filled: the budget is the free space less a margin."""
    src = source_of("folder", tmp_path, class_files())
    (tmp_path / "d" / "shapes").mkdir(parents=True)
    (tmp_path / "d" / "shapes" / "mine.txt").write_text("kept")
    usage = guards.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(guards.shutil, "disk_usage",
                        lambda p: usage._replace(free=guards.FREE_MARGIN + 5_000))
    with pytest.raises(DataError, match=r"take over 5 KB \(256 MB free on the target's disk, less a 256 MB margin\)"):
        imported.import_source(src, tmp_path / "d" / "shapes", overwrite=True)
    assert leftovers(tmp_path / "d") == ["shapes"] and leftovers(tmp_path / "d" / "shapes") == ["mine.txt"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_full_disk_stops_the_import():
    """A full disk made every later file 'cannot read' and the import exit 0: now it stops."""
    with pytest.raises(DataError, match="import stopped: no space left on the target's disk"):
        guards.copy_limited(io.BytesIO(b"x" * 100), "/dev/full", 1000)


@pytest.mark.parametrize("kind", ["folder", "zip", "tar.gz"])
def test_image_padded_far_past_its_pixels_is_skipped_and_listed(tmp_path, monkeypatch, kind):
    """Eight JPEGs padded with 400 MB of zeros (a 3.3 MB zip) were kept as 3.2 GB of valid images;
    here the slack is lowered to 64 KB and the padding is 1 MB."""
    monkeypatch.setattr(guards, "IMAGE_SLACK", 64 * 2**10)
    files = class_files()
    files["shapes/a/00.jpg"] += bytes(2**20)  # 24x20 pixels: a JPEG decodes and ignores the tail
    src = source_of(kind, tmp_path, files)
    report = imported.import_source(src, tmp_path / "d" / "shapes")
    skipped = dict(report["skipped"])
    name = next(n for n in skipped if n.endswith("a/00.jpg"))
    assert skipped[name] == "1 MB for a 24x20 image, far more than its pixels can need (padded, or holding other data)"
    assert sum(report["written"].values()) == 23
    assert sum(f.stat().st_size for f in (tmp_path / "d").rglob("*") if f.is_file()) < 2**20


# ---------------------------------------------------------------- names a filesystem cannot hold

LONG = "x" * 300


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_entry_names_too_long_are_skipped_and_listed(tmp_path, kind):
    """One 300-character name in a tar aborted the whole import with 'cannot read tar archive'."""
    files = class_files(3)
    files[f"shapes/a/{LONG}.jpg"] = jpeg_bytes(7)
    files[f"shapes/{LONG}/0.jpg"] = jpeg_bytes(8)
    report = imported.import_source(source_of(kind, tmp_path, files), tmp_path / "d" / "shapes")
    assert dict(report["skipped"]) == {
        f"shapes/a/{LONG}.jpg": "file name longer than 255 bytes, more than a filesystem holds",
        f"shapes/{LONG}/0.jpg": "folder name longer than 255 bytes, more than a filesystem holds"}
    assert sum(report["written"].values()) == 6
    tree = {**cifar_tree(), f"train/cat/{LONG}.jpg": jpeg_bytes(9)}
    (tmp_path / "c").mkdir()
    report = cifar.import_source(source_of(kind, tmp_path / "c", tree), tmp_path / "d" / "cifar10")
    assert dict(report["skipped"])[f"train/cat/{LONG}.jpg"].startswith("file name longer than 255 bytes")
    assert report["written"] == {"train": 21, "test": 10}


def test_name_the_target_refuses_is_that_file_skipped(tmp_path, monkeypatch):
    """A target filesystem with a shorter limit than NAME_MAX: that file is skipped, the rest go on."""
    monkeypatch.setattr(folders, "NAME_MAX", 1000)
    tree = {**cifar_tree(), f"train/cat/{LONG}.jpg": jpeg_bytes(9)}
    report = cifar.import_source(tar_of(tmp_path / "c.tar.gz", tree), tmp_path / "d" / "cifar10")
    assert dict(report["skipped"])[f"train/cat/{LONG}.jpg"] == "name too long for the target's filesystem"
    assert report["written"] == {"train": 21, "test": 10}


# ---------------------------------------------------------------- staging folders: signals, leftovers

# `data import` with each file's copy slowed down (the hook), so that a signal lands mid-import
SLOW_IMPORT = """import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job may start with it ignored
from convzoo.data import guards
real = guards.copy_regular
def slow(*args, **kw):
    real(*args, **kw)
    time.sleep(0.2)
guards.copy_regular = slow
from convzoo.cli import main
sys.argv[0] = "convzoo"
main()
"""


def hidden(folder):
    return sorted(p.name for p in Path(folder).glob(".*")) if Path(folder).exists() else []


def start_import(tmp_path):
    """A `data import shapes` subprocess, returned once its staging folder holds a copied file."""
    src = write_files(tmp_path / "src", class_files(10)) / "shapes"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_IMPORT, "data", "import", "shapes", str(src),
                             "--data-dir", str(tmp_path / "d")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(6000):  # a hang guard, not a timing: the import takes 4 s or more
        if any((tmp_path / "d").glob(".shapes.*.tmp/.incoming/*")) or proc.poll() is not None:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    return src, proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_an_import_removes_its_staging_folder(tmp_path, signum):
    """SIGTERM during an import left a 1.3 GB hidden staging folder."""
    _, proc = start_import(tmp_path)
    proc.send_signal(signum)
    out, errs = proc.communicate(timeout=60)
    assert proc.returncode == 130, errs
    assert errs.strip().splitlines()[-1] == (f"Error: import stopped (Ctrl-C or SIGTERM): nothing was "
                                             f"imported, {tmp_path / 'd' / 'shapes'} is as it was")
    assert "Traceback" not in errs
    assert hidden(tmp_path / "d") == [] and not (tmp_path / "d" / "shapes").exists()


def test_leftover_of_a_killed_import_is_removed_by_the_next(tmp_path, runner):
    src, proc = start_import(tmp_path)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=60)
    left = hidden(tmp_path / "d")
    assert len(left) == 1 and left[0].startswith(f".shapes.{proc.pid}.")
    res = invoke(runner, "data", "import", "shapes", src, "--data-dir", tmp_path / "d")
    assert res.exit_code == 0, res.output
    assert (f"removed {left[0]} beside {tmp_path / 'd' / 'shapes'}: the staging folder of an import "
            f"that was killed") in res.output
    assert hidden(tmp_path / "d") == [] and (tmp_path / "d" / "shapes" / "dataset.json").exists()


def test_sweep_leaves_live_imports_and_puts_back_a_moved_folder(tmp_path):
    done = subprocess.Popen(["true"])
    done.wait()
    d = tmp_path / "d"
    live = d / f".shapes.{os.getpid()}.abcdefgh.tmp"  # this process is alive: another import's
    live.mkdir(parents=True)
    moved = d / f".shapes.{done.pid}.abcdefgh.old"  # killed between moving shapes aside and the new in
    (moved / "train").mkdir(parents=True)
    src = write_files(tmp_path / "src", class_files(3)) / "shapes"
    with pytest.raises(DataError, match=r"put back .*shapes from .shapes.\d+.abcdefgh.old, where an import "
                                        r"that was killed had moved it; nothing was imported"):
        imported.import_source(src, d / "shapes")
    assert (d / "shapes" / "train").is_dir() and hidden(d) == [live.name]
