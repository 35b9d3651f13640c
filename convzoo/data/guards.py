"""Reading an import source safely: SOURCE is a regular file or a folder, folders are walked without
recursion or links, and only regular files are copied, each within a size bound, all of them within
one import's byte budget; an image far larger than its pixels can need is left out."""
import errno
import os
import shutil
import stat
import warnings

from convzoo.errors import DataError

MAX_DEPTH = 100  # folder levels in a source
MAX_ENTRIES = 2_000_000  # files and folders in a source
MAX_IMPORT_BYTES = 20 * 2**30  # one import, whatever the disk has free
FREE_MARGIN = 256 * 2**20  # left free on the target's filesystem
BYTES_PER_SAMPLE = 8  # an image file may hold 8 bytes per pixel and band (float32 is 4) ...
IMAGE_SLACK = 16 * 2**20  # ... plus this much metadata (EXIF, ICC, previews)


def _mb(n):
    if n >= 2**30:
        return f"{n / 2**30:,.1f} GB"
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


class Budget:
    """The bytes one import may write: min(free space on the target's filesystem minus FREE_MARGIN,
    MAX_IMPORT_BYTES). spend() past it raises DataError; the import stops and leaves nothing."""

    def __init__(self, folder):
        free = shutil.disk_usage(folder).free
        if free - FREE_MARGIN < MAX_IMPORT_BYTES:
            self.limit = max(free - FREE_MARGIN, 0)
            self.why = f"{_mb(free)} free on the target's disk, less a {_mb(FREE_MARGIN)} margin"
        else:
            self.limit, self.why = MAX_IMPORT_BYTES, f"the {_mb(MAX_IMPORT_BYTES)} cap on one import"
        self.used = 0

    def spend(self, n):
        self.used += n
        if self.used > self.limit:
            raise DataError(f"import stopped: the source's files take over {_mb(self.limit)} ({self.why}); "
                            "nothing was imported; free some space or import a smaller source")

    def refund(self, n):
        self.used -= n


def padded(path):
    """Why the image file at `path` is far larger than its pixels can need, or None (also when
    its header does not read: the decode check says why)."""
    size = os.path.getsize(path)
    if size <= IMAGE_SLACK:
        return None
    from PIL import Image

    from convzoo import images

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path, formats=images.FORMATS) as im:
                (w, h), bands = im.size, len(im.getbands())
    except Exception:  # noqa: BLE001 -- any header Pillow cannot read
        return None
    if size > BYTES_PER_SAMPLE * w * h * bands + IMAGE_SLACK:
        return (f"{_mb(size)} for a {w}x{h} image, far more than its pixels can need "
                "(padded, or holding other data)")
    return None


def check_source(path):
    """'folder' or 'file' for an import SOURCE; DataError for a FIFO, device, socket or nothing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file or folder") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise DataError(f"{path}: not a regular file or folder (a FIFO, device or socket); "
                    "give a folder, .zip or .tar(.gz)")


def walk_regular(root):
    """(regular files, links and special files skipped) under `root`, as sorted relative posix names.
    Iterative (os.walk overflows Python's stack on deep trees); links are listed, never followed."""
    files, skipped, stack, seen = [], [], [("", 0)], 0
    while stack:
        rel, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DataError(f"{root}: folders nest deeper than {MAX_DEPTH} levels; give a shallower folder")
        folder = os.path.join(root, *rel.split("/")) if rel else root
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise DataError(f"{folder}: cannot list folder ({e.strerror or e})") from None
        seen += len(entries)
        if seen > MAX_ENTRIES:
            raise DataError(f"{root}: over {MAX_ENTRIES:,} files and folders; give a smaller folder")
        subdirs = []
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                skipped.append((name, "a symbolic link, not followed"))
            elif entry.is_dir(follow_symlinks=False):
                subdirs.append((name, depth + 1))
            elif entry.is_file(follow_symlinks=False):
                files.append(name)
            else:
                skipped.append((name, "not a regular file (FIFO, device or socket)"))
        stack.extend(reversed(subdirs))
    return files, skipped


def copy_regular(src, dest, max_bytes, budget=None):
    """Copy the regular file `src` (opened without following a link, fstat-checked) to a new `dest`,
    at most max_bytes; OSError or ValueError with a one-line reason otherwise."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"larger than {max_bytes // 2**20} MB")
        copy_limited(f, dest, max_bytes, "xb", budget)


def copy_limited(f, dest, max_bytes, mode="wb", budget=None):
    """Copy the open file `f` to `dest` in 1 MB chunks; ValueError past max_bytes (a size can lie),
    DataError past the import's budget or when the disk is full (the import stops: a full disk
    would skip every later file)."""
    done = 0
    try:
        with open(dest, mode) as out:
            while chunk := f.read(1 << 20):
                done += len(chunk)
                if done > max_bytes:
                    raise ValueError(f"larger than {max_bytes // 2**20} MB")
                if budget is not None:
                    budget.spend(len(chunk))
                out.write(chunk)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"import stopped: no space left on the target's disk ({e.strerror}); "
                            "nothing was imported") from None
        if e.errno == errno.ENAMETOOLONG and e.filename == os.fspath(dest):
            raise ValueError("name too long for the target's filesystem") from None
        raise
