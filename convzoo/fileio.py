"""Writing files safely: a temp file in the target folder moved into place, never a half file."""
import contextlib
import errno
import os
import shutil
import stat
import tempfile

from convzoo.errors import ConvzooError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path beside `path` (same suffix); on success it replaces `path` atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    stem, suffix = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        if not stat.S_ISREG(os.lstat(tmp).st_mode):  # swapped for a link: never installed at `path`
            raise ConvzooError(f"{tmp}: the temp file became a link or a folder; {path} was not written")
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)  # a link at `path` is replaced, not followed
    finally:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):  # moved into place, or not ours
            os.remove(tmp)


def open_temp(tmp, mode="wb", **kwargs):
    """Open the temp file atomic_path made for writing, never through a link put in its place."""
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise ConvzooError(f"{tmp}: the temp file became a link; nothing was written through it") from None
    return os.fdopen(fd, mode, **kwargs)


@contextlib.contextmanager
def atomic_folder(path, tag="", hold=lambda: None):
    """Yield a temp folder beside `path` (.BASE.TAGxxxxxxxx.tmp); on success it takes the place of
    `path`: whatever is there (a folder, a file, a link, never followed) is moved aside first and
    removed only once the new one is in place. hold() is called before the moves and the cleanup
    (an import ignores signals from then on)."""
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.{tag}", suffix=".tmp", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700
        yield tmp
        hold()
        old = None
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f".{base}.{tag}", suffix=".old", dir=parent)
            os.rmdir(old)
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if old:
                os.rename(old, path)
            raise
        if old:
            _remove(old)
    finally:
        hold()
        if os.path.lexists(tmp):
            _remove(tmp)


def _remove(path):
    """Remove a folder tree, or a file or link (never followed)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def sha256(path, chunk=2**20):
    """The hex SHA-256 of a file's bytes (the key of a checkpoint's LiteRT twin)."""
    import hashlib

    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO would block a plain open
    except FileNotFoundError:
        raise ConvzooError(f"{path}: no such file") from None
    except OSError as e:
        raise ConvzooError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # fdopen refuses a folder with IsADirectoryError
        os.close(fd)
        raise ConvzooError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open_temp(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def save_figure(fig, path):
    """Save a matplotlib Figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        with open_temp(tmp) as f:
            fig.savefig(f, format="png", dpi=100, bbox_inches="tight")


def refuse_link(path, what, hint):
    """Refuse a symbolic link (live or dangling) where convzoo is about to write."""
    if os.path.islink(path):
        raise ConvzooError(f"{what} {path} is a symbolic link; convzoo does not write through links: {hint}")


def real_folder(path, what="folder"):
    """Make `path` if missing; refuse it if it is a link or a file (checked with lstat before each
    write into it, so a folder swapped for a link during a run is not followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        os.makedirs(path)
        return path
    if stat.S_ISLNK(mode):
        raise ConvzooError(f"{what} {path} is a symbolic link; convzoo does not write through links")
    if not stat.S_ISDIR(mode):
        raise ConvzooError(f"{what} {path} is a file, not a folder")
    return path


def _writable(folder):
    return os.access(folder, os.W_OK)


def check_output(path, overwrite=False, need_bytes=0, is_folder=False):
    """Refuse an existing file (a folder, if is_folder) unless overwrite; check the parent is writable
    and has room."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path) and not is_folder:
        raise ConvzooError(f"{path} is a folder; give a file name such as {os.path.join(path, 'model.h5')}")
    if is_folder and os.path.exists(path) and not os.path.isdir(path):
        raise ConvzooError(f"{path} is a file; give a folder name")
    if os.path.lexists(path) and not overwrite:  # a dangling link too: it is the user's
        raise ConvzooError(f"{path} already exists; pass --overwrite to replace it")
    folder = os.path.dirname(path)
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ConvzooError(f"cannot create {folder}: {probe} is a file, not a folder")
    if not _writable(probe):
        raise ConvzooError(f"cannot write to {folder}: permission denied")
    free = shutil.disk_usage(probe).free
    if need_bytes and free < need_bytes:
        raise ConvzooError(f"not enough disk space in {probe}: {free // 2**20} MB free, "
                           f"about {need_bytes // 2**20} MB needed")
    return path


MAX_WALK_DEPTH = 100  # folder levels under a folder given on the command line


def walk_files(root, keep=lambda name: True, max_depth=MAX_WALK_DEPTH):
    """Files under `root` whose name `keep` accepts, sorted, without recursion (os.walk overflows
    Python's stack on deep trees) and without following links to folders."""
    out, stack = [], [(os.fspath(root), 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > max_depth:
            raise ConvzooError(f"{root}: folders nest deeper than {max_depth} levels; give a shallower folder")
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise ConvzooError(f"{folder}: cannot list folder ({e.strerror or e})") from None
        subdirs = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append((entry.path, depth + 1))
            elif keep(entry.name):
                out.append(entry.path)
        stack.extend(reversed(subdirs))
    return out
