"""Image-folder datasets: sources read safely (folder, .zip, .tar[.gz]), trees of class folders decoded
into cached arrays, and dataset folders built beside the target and moved into place."""
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tarfile
import warnings
import zipfile

import numpy as np

from convzoo import images, progress
from convzoo.data import guards
from convzoo.errors import DataError, ImageError
from convzoo.fileio import atomic_folder, atomic_path, open_temp

CACHE_VERSION = 1
MAX_FILE_BYTES = 512 * 2**20  # no photo is this big; stops a zip bomb from filling the disk
NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows)


class SkippedImages(UserWarning):
    """Some images in a dataset folder could not be decoded and were left out."""


def is_image_name(name):
    """A photo by its extension; hidden files (macOS '._x.jpg', '.DS_Store') are not."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in images.EXTENSIONS


def reason(err, path):
    """An ImageError's message without the (temporary) path it names."""
    msg = str(err)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def check_image(path):
    """None if `path` decodes, else why not (one line)."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        images.read(path, "RGB")
    except ImageError as e:
        return reason(e, path)
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    return None


# ---------------------------------------------------------------- sources: folder, zip, tar


def _clean_name(name, where):
    """The entry name as a relative posix path; DataError if it would land outside the target."""
    raw = name.replace("\\", "/")
    parts = raw.split("/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw) or ".." in parts or "\0" in raw:
        raise DataError(f"{where}: refused: archive entry '{name}' would be written outside the "
                        f"target folder; nothing was imported")
    return "/".join(p for p in parts if p not in ("", "."))


class Source:
    """The files of a folder, .zip or .tar(.gz) archive, by relative posix name.

    Archives are checked whole when opened: an entry with '..', an absolute path, or a link or
    device refuses the archive before anything is written."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.names = []
        self.links = []  # (name, why) listed, never read: links, special files, names too long
        self.budget = None  # a guards.Budget once building() has a target
        if guards.check_source(self.path) == "folder":
            self.kind = "folder"
            self._scan_folder()
        elif not os.path.exists(self.path):
            raise DataError(f"{self.path}: no such file or folder")
        elif zipfile.is_zipfile(self.path):
            self.kind = "zip"
            self._scan_zip()
        elif _is_tar(self.path):
            self.kind = "tar"
            self._scan_tar()
        else:
            raise DataError(f"{self.path}: not a folder, .zip or .tar(.gz) archive")
        self.names.sort()

    def _scan_folder(self):
        self.names, self.links = guards.walk_regular(self.path)

    def _scan_zip(self):
        self._zip = {}
        try:
            with zipfile.ZipFile(self.path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"{self.path}: cannot read zip archive ({e})") from None
        for info in infos:
            name = _clean_name(info.filename, self.path)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DataError(f"{self.path}: refused: archive entry '{info.filename}' is a symbolic "
                                f"link; nothing was imported")
            if info.is_dir() or not name:
                continue
            if self._too_long(name):
                continue
            self._zip[name] = info
            self.names.append(name)

    def _scan_tar(self):
        self._tar = {}
        try:
            with tarfile.open(self.path, "r:*") as tf:
                members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{self.path}: cannot read tar archive ({e})") from None
        for m in members:
            name = _clean_name(m.name, self.path)
            if m.isdir():
                continue
            if not m.isreg():
                kind = ("symbolic link" if m.issym() else "hard link" if m.islnk()
                        else "device or special file")
                raise DataError(f"{self.path}: refused: archive entry '{m.name}' is a {kind}; "
                                f"nothing was imported")
            if name and not self._too_long(name):
                self._tar[m.name] = name
                self.names.append(name)

    def _too_long(self, name):
        """List an archive entry a filesystem cannot hold (a name or folder over NAME_MAX bytes)."""
        parts = name.split("/")
        long = [i for i, p in enumerate(parts) if len(p.encode("utf-8", "surrogateescape")) > NAME_MAX]
        if long:
            what = "file name" if long[-1] == len(parts) - 1 else "folder name"
            self.links.append((name, f"{what} longer than {NAME_MAX} bytes, more than a filesystem holds"))
        return bool(long)

    def local_path(self, name):
        """The file's own path when the source is a folder, else None."""
        return os.path.join(self.path, *name.split("/")) if self.kind == "folder" else None

    def copy(self, wanted):
        """Write each wanted {name: destination path}; returns {name: why it failed} for failures.
        Held to self.budget (set by building()); an image far larger than its pixels is removed."""
        failed = {}
        budget = self.budget
        bar = progress.Progress(len(wanted), label=f"reading {self.path}", unit="files")

        def done(name, dest):
            why = guards.padded(dest) if is_image_name(name) else None
            if why:
                failed[name] = why
                if budget is not None:
                    budget.refund(os.path.getsize(dest))
                os.remove(dest)

        if self.kind == "folder":
            for name, dest in wanted.items():
                bar.advance()
                try:
                    guards.copy_regular(self.local_path(name), dest, MAX_FILE_BYTES, budget)
                    done(name, dest)
                except ValueError as e:
                    failed[name] = str(e)
                except OSError as e:
                    failed[name] = f"cannot read ({e.strerror or e})"
        elif self.kind == "zip":
            try:
                with zipfile.ZipFile(self.path) as zf:
                    for name, dest in wanted.items():
                        bar.advance()
                        info = self._zip[name]
                        if info.file_size > MAX_FILE_BYTES:
                            failed[name] = f"larger than {MAX_FILE_BYTES // 2**20} MB"
                            continue
                        try:
                            with zf.open(info) as f:
                                _copy_limited(f, dest, budget)
                            done(name, dest)
                        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
                            failed[name] = f"corrupt archive entry ({e})"
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"{self.path}: cannot read zip archive ({e})") from None
        else:
            left = dict(wanted)
            try:
                with tarfile.open(self.path, "r:*") as tf:
                    for m in tf:  # one sequential pass: random access into a .tar.gz re-inflates it
                        if not left:
                            break
                        name = self._tar.get(m.name)
                        if name not in left or not m.isreg():
                            continue
                        bar.advance()
                        if m.size > MAX_FILE_BYTES:
                            failed[name] = f"larger than {MAX_FILE_BYTES // 2**20} MB"
                        else:
                            try:
                                with tf.extractfile(m) as f:
                                    _copy_limited(f, left[name], budget)
                                done(name, left[name])
                            except ValueError as e:
                                failed[name] = str(e)
                        del left[name]
            except (tarfile.TarError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataError(f"{self.path}: cannot read tar archive ({e})") from None
            failed.update({name: "missing from the archive on a second read" for name in left})
        bar.close()
        return failed


def _is_tar(path):
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError):
        return False


def _copy_limited(f, dest, budget=None):
    guards.copy_limited(f, dest, MAX_FILE_BYTES, budget=budget)


# ---------------------------------------------------------------- building the target folder


def check_target(folder, source, overwrite):
    """Refuse an existing target unless overwrite, and a source inside the target."""
    folder = os.path.abspath(os.fspath(folder))
    if os.path.lexists(folder) and not overwrite:
        raise DataError(f"{folder} already exists; pass --overwrite to replace it")
    src = os.path.realpath(os.fspath(source))
    if os.path.commonpath([src, os.path.realpath(folder)]) == os.path.realpath(folder):
        raise DataError(f"the source {source} is inside the target {folder}; import from elsewhere")
    return folder


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def sweep(folder):
    """Remove what a killed import (SIGKILL, power loss) left beside `folder`: its hidden staging
    folders (.NAME.PID.xxxxxxxx.tmp, PID no longer running), and a moved-aside copy (.old) once the
    folder is back, or put that copy back when the folder is missing; returns one note per folder."""
    parent, base = os.path.split(os.path.abspath(os.fspath(folder)))
    pattern = re.compile(rf"\.{re.escape(base)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.(tmp|old)")
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except OSError:
        return []
    notes = []
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or not entry.is_dir(follow_symlinks=False) or (m[1] and _alive(int(m[1]))):
            continue
        if m[2] == "old" and not os.path.lexists(folder):
            os.rename(entry.path, folder)
            notes.append(f"put back {folder} from {entry.name}, where an import that was killed had moved it")
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
            notes.append(f"removed {entry.name} beside {folder}: the staging folder of an import that was killed")
    return notes


@contextlib.contextmanager
def building(folder, src=None, notes=None):
    """Yield a temp folder beside `folder`; on success it takes the place of `folder`. What `src`
    copies in the block is held to one guards.Budget for the target's disk. Ctrl-C or SIGTERM
    removes the temp folder (Interrupted); what a killed import left is removed first (sweep; its
    notes appended to `notes`)."""
    from convzoo import interrupt
    from convzoo.errors import Interrupted

    folder = os.path.abspath(os.fspath(folder))
    swept = sweep(folder)
    back = [n for n in swept if n.startswith("put back")]
    if back:  # the folder the killed import was replacing: the user decides again
        raise DataError(f"{back[0]}; nothing was imported; run the import again (--overwrite to replace it)")
    if notes is not None:
        notes.extend(swept)
    with interrupt.terminate_as_interrupt() as hold:
        try:  # the pid in the name tells sweep() a running import's folder from a killed one's
            with atomic_folder(folder, f"{os.getpid()}.", hold) as tmp:
                if src is not None:
                    src.budget = guards.Budget(tmp)
                yield tmp
        except KeyboardInterrupt:
            raise Interrupted(f"import stopped (Ctrl-C or SIGTERM): nothing was imported, "
                              f"{folder} is as it was") from None


# ---------------------------------------------------------------- decoding a tree, with a cache


def find_split(name, folder, split, splits, find, missing_message):
    """find(folder) of a dataset module, for loading `split`; DataError for a split dataset `name`
    does not have, or when its files are not in `folder` (missing_message says what to put there)."""
    if split not in splits:
        raise DataError(f"{name} has no '{split}' split; choose from {', '.join(splits)}")
    found = find(folder)
    if found is None:
        raise DataError(f"dataset files not found: {missing_message(folder)}")
    return found


def list_tree(root, classes):
    """[(relative path, label)] of the images in root/<class>/, sorted; DataError on a stray folder."""
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such folder")
    known = {c: i for i, c in enumerate(classes)}
    files = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if entry.name not in known:
            raise DataError(f"{root}: unknown class folder '{entry.name}'; expected "
                            f"{', '.join(classes)}")
        for f in sorted(os.scandir(entry.path), key=lambda e: e.name):
            if f.is_file() and is_image_name(f.name):
                st = f.stat()
                files.append((f"{entry.name}/{f.name}", known[entry.name], st.st_size, st.st_mtime_ns))
    return files


def decode(path, size, mode="RGB"):
    """One training image: images.read_sized, the resize prediction uses too."""
    return images.read_sized(path, size, mode)


def cache_path(folder, split):
    return os.path.join(folder, f"cache-{split}.npz")


def memory_budget():
    """Bytes of decoded images a split may hold in memory; above it the cache is read from disk a
    batch at a time. CONVZOO_MEMORY_MB sets it; by default a quarter of the memory available now."""
    given = os.environ.get("CONVZOO_MEMORY_MB", "")
    if given.strip().isdigit():
        return int(given) * 2**20
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        free = 8 * 2**30
    return free // 4


def rows_path(folder, split):
    """The decoded images of a split too large for memory: a plain .npy, memory-mapped."""
    return os.path.join(folder, f"cache-{split}-images.npy")


def load_tree(folder, split, classes, size, strict=False, mode="RGB"):
    """(x uint8 (n, h, w, 3 or 1 for mode 'L'), y uint8) of folder/split/<class>/*, decoded once and
    cached in folder/cache-<split>.npz; unreadable images are left out with a SkippedImages warning,
    or DataError when strict. A split over memory_budget() is decoded straight to disk
    (cache-<split>-images.npy) and x is a read-only np.memmap of it: never in memory whole."""
    root = os.path.join(os.fspath(folder), split)
    files = list_tree(root, classes)
    if not files:
        raise DataError(f"{root}: no images in its class folders ({', '.join(classes)})")
    key = _key(files, classes, size, mode)
    shape = (len(files),) + tuple(size) + (3 if mode == "RGB" else 1,)
    big = int(np.prod(shape)) > memory_budget()
    cached = _read_cache(folder, split, key, shape[1:], big)
    if cached is None and big:
        x, y, skipped = _decode_to_disk(folder, split, root, files, size, mode, key, shape)
    elif cached is None:
        x, y, skipped = _decode_all(root, files, size, mode)
        try:
            with atomic_path(cache_path(folder, split)) as tmp:
                np.savez(tmp, x=x, y=y, key=np.array(key), skipped=np.array(skipped, dtype=str))
        except OSError as e:
            warnings.warn(f"{folder}: cannot write the decoded-image cache ({e.strerror or e}); "
                          f"the next load decodes again", stacklevel=2)
    else:
        x, y, skipped = cached
    if skipped:
        msg = (f"{root}: {len(skipped)} of {len(files)} images cannot be decoded "
               f"(first: {skipped[0]})")
        if strict:
            raise DataError(f"{msg}; remove them, or load without --strict to skip them")
        warnings.warn(f"{msg}; skipped", SkippedImages, stacklevel=2)
    if not len(y):
        raise DataError(f"{root}: none of its {len(files)} images can be decoded")
    return x, y


def _decode_to_disk(folder, split, root, files, size, mode, key, shape):
    """Decode into a memory-mapped .npy beside the cache (atomically), then map it read-only."""
    need = int(np.prod(shape))
    free = shutil.disk_usage(folder).free
    if free < need + 2**28:
        raise DataError(f"{root}: its {len(files):,} decoded images need {need // 2**20:,} MB on disk "
                        f"(more than memory allows), {free // 2**20:,} MB free")
    try:
        with atomic_path(rows_path(folder, split)) as tmp:
            _npy_file(tmp, shape)
            x = np.load(tmp, mmap_mode="r+", allow_pickle=False)
            y, skipped = _decode_into(x, root, files, size, mode)
            x.flush()
            del x
        with atomic_path(cache_path(folder, split)) as tmp:
            np.savez(tmp, y=y, key=np.array(key), skipped=np.array(skipped, dtype=str),
                     rows=np.array(len(files)))
    except OSError as e:
        raise DataError(f"{root}: cannot write its decoded images to {folder} "
                        f"({e.strerror or e}); {need // 2**20:,} MB are needed") from None
    return np.load(rows_path(folder, split), mmap_mode="r")[:len(y)], y, skipped


def _npy_file(tmp, shape):
    """An .npy of uint8 zeros of `shape` in the temp file: its header, then the size (sparse)."""
    with open_temp(tmp) as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        f.truncate(f.tell() + int(np.prod(shape)))


def load_tree_listed(folder, split, classes, size, mode="RGB"):
    """(x, y, kept ['class/file'], skipped ['class/file: reason']) of a split: load_tree's images
    with the files they came from, in the same order (uses and fills the cache)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImages)
        x, y = load_tree(folder, split, classes, size, mode=mode)
    root = os.path.join(os.fspath(folder), split)
    files = list_tree(root, classes)
    skipped = _cached_skipped(folder, split, _key(files, classes, size, mode))
    gone = {s.split(": ", 1)[0] for s in skipped}
    kept = [rel for rel, *_ in files if rel not in gone]
    if len(kept) != len(y):
        raise DataError(f"{root}: the files changed while reading; run the command again")
    return x, y, kept, skipped


def _key(files, classes, size, mode="RGB"):
    # the colour mode joins the key only when gray, so the RGB caches written before it stay valid
    h = hashlib.sha256(f"{CACHE_VERSION}|{size}|{'/'.join(classes)}{'' if mode == 'RGB' else '|' + mode}".encode())
    for rel, label, nbytes, mtime in files:
        h.update(f"\n{rel}\0{label}\0{nbytes}\0{mtime}".encode())
    return h.hexdigest()


def _cached_skipped(folder, split, key):
    """The skipped files the split's cache lists, [] without a matching cache."""
    try:
        with np.load(cache_path(folder, split), allow_pickle=False) as f:
            return [str(s) for s in f["skipped"]] if str(f["key"]) == key else []
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return []


def _read_cache(folder, split, key, image_shape, big):
    """(x, y, skipped) of a split's cache if its key matches, else None (rebuilt). A cache whose
    images are over the memory budget is mapped from its .npy, never read whole."""
    path = cache_path(folder, split)
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None
            y, skipped = f["y"], [str(s) for s in f["skipped"]]
            if "rows" in f.files:
                x = np.load(rows_path(folder, split), mmap_mode="r", allow_pickle=False)
                if x.dtype != np.uint8 or x.shape[1:] != tuple(image_shape) or len(x) != int(f["rows"]) \
                        or len(x) < len(y):
                    return None
                return x[:len(y)], y, skipped
            if big:  # written in memory before the split grew past the budget: decode to disk
                return None
            return f["x"], y, skipped
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged cache is rebuilt


def _decode_all(root, files, size, mode="RGB"):
    h, w = size
    x = np.empty((len(files), h, w, 3 if mode == "RGB" else 1), np.uint8)
    y, skipped = _decode_into(x, root, files, size, mode)
    return x[:len(y)], y, skipped


def _decode_into(x, root, files, size, mode):
    """Decode files into the rows of x in order, the unreadable left out: (labels, skipped)."""
    y = np.empty(len(files), np.uint8)
    skipped = []
    n = 0
    for rel, label, _, _ in progress.track(files, label=f"decoding {root}", unit="images"):
        path = os.path.join(root, rel)
        try:
            x[n] = decode(path, size, mode)
        except ImageError as e:
            skipped.append(f"{rel}: {reason(e, path)}")
            continue
        y[n] = label
        n += 1
    return y[:n], skipped


def count_tree(root, classes):
    """Number of image files in root/<class>/ (no decoding)."""
    n = 0
    for c in classes:
        d = os.path.join(root, c)
        if os.path.isdir(d):
            n += sum(1 for e in os.scandir(d) if e.is_file() and is_image_name(e.name))
    return n
