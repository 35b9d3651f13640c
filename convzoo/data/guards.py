"""Reading an import source safely: SOURCE is a regular file or a folder, folders are walked without
recursion or links, and only regular files are copied, each within a size bound."""
import os
import stat

from convzoo.errors import DataError

MAX_DEPTH = 100  # folder levels in a source
MAX_ENTRIES = 2_000_000  # files and folders in a source


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


def copy_regular(src, dest, max_bytes):
    """Copy the regular file `src` (opened without following a link, fstat-checked) to a new `dest`,
    at most max_bytes; OSError or ValueError with a one-line reason otherwise."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"larger than {max_bytes // 2**20} MB")
        copy_limited(f, dest, max_bytes, "xb")


def copy_limited(f, dest, max_bytes, mode="wb"):
    """Copy the open file `f` to `dest` in 1 MB chunks; ValueError past max_bytes (a size can lie)."""
    done = 0
    with open(dest, mode) as out:
        while chunk := f.read(1 << 20):
            done += len(chunk)
            if done > max_bytes:
                raise ValueError(f"larger than {max_bytes // 2**20} MB")
            out.write(chunk)
