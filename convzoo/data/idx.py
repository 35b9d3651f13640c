"""IDX files (MNIST, Fashion-MNIST), gzipped or not: read, check and write numpy arrays."""
import gzip
import math
import os
import struct
import zlib

import numpy as np

from convzoo.errors import DataError
from convzoo.fileio import atomic_path

_UBYTE = 0x08


def _open(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def read_header(f, path):
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
    if head[2] != _UBYTE:
        raise DataError(f"{path}: IDX data type 0x{head[2]:02x} is not unsigned byte (0x08)")
    ndim = head[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{path}: IDX header says {ndim} dimensions")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    return struct.unpack(f">{ndim}I", raw)


def read_shape(path):
    """The array shape from the header alone (cheap: used by `data list`)."""
    try:
        with _open(path) as f:
            return read_header(f, path)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def read_idx(path):
    """The whole array, checked against its header."""
    try:
        with _open(path) as f:
            shape = read_header(f, path)
            want = math.prod(shape)  # Python ints: a forged header cannot overflow
            # read in chunks: memory follows the bytes the file holds, not what its header claims
            data = bytearray()
            while len(data) <= want:
                chunk = f.read(min(1 << 22, want + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read, truncated or corrupt ({e})") from None
    if len(data) < want:
        raise DataError(f"{path}: truncated: header says {shape}, file holds {len(data)} of {want} bytes")
    if len(data) > want:
        raise DataError(f"{path}: {len(data) - want}+ bytes after the data the header describes {shape}")
    return np.frombuffer(bytes(data), dtype=np.uint8).reshape(shape)


def write_idx(path, array):
    """Write a uint8 array as IDX (gzipped if the name ends in .gz), atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with atomic_path(path) as tmp:
        opener = gzip.open if os.fspath(path).endswith(".gz") else open
        with opener(tmp, "wb") as f:
            f.write(header + array.tobytes())
