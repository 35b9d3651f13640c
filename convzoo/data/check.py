"""`convzoo data check`: the dataset doctor. Decodes each split once (through the decoded cache),
then hashes with numpy: exact duplicates by content (the file's bytes, or the pixels of an IDX
image), near-duplicates by a perceptual hash of the decoded image, within a class, across classes
and across splits; plus tiny classes, imbalance, small images, mixed colour modes, unreadable files
and files that are not images.

The perceptual hash is pHash: the image in gray, area-resized to 32x32, its 2-D DCT, the 8x8
lowest frequencies compared with their median: 64 bits. Two images are near-duplicates when their
hashes differ in at most NEAR_BITS bits. Near-flat images (gray-level standard deviation below
FLAT_STD) hash to noise and are left out of the near-duplicate search.

On photos 64 bits tell images apart (CIFAR-10: 23 pairs of different classes within 6 bits among
60,000 images); on small gray images they do not (MNIST: 215,881 such pairs, three per image; the
same vertical "1" by different writers hashes alike). So a class whose images match more than
CHANCE images of other classes each, on average, is one the hash cannot tell apart, and its pairs
must also match pixel by pixel: at most 1% of pixels more than PIXEL_LEVELS gray levels apart.
"""
import hashlib
import os

import numpy as np
from PIL import Image

from convzoo import data as catalog
from convzoo.data import folders, store
from convzoo.errors import DataError

NEAR_BITS = 6  # of 64: sampled CIFAR-10 pairs at 5-6 bits were all the same photo (README)
FLAT_STD = 3.0  # gray levels
TINY_CLASS = 10  # training images
IMBALANCE = 10.0  # largest class / smallest class, in train
SMALL = 0.5  # an image whose shorter side is below this fraction of the input size
CHANCE = 0.01  # cross-class hash matches per image above which a class's pairs are checked by pixels
PIXEL_LEVELS = 32  # of 255: a pixel-confirmed pair has at most PIXEL_SHARE of pixels further apart
PIXEL_SHARE = 0.01
EXAMPLES = 3
BIG_RUN = 512  # images sharing one band value, compared in row blocks


# ---------------------------------------------------------------- hashes
def _dct_matrix(n=32):
    k = np.arange(n)[:, None]
    d = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


def _gray32(x):
    """(n, 32, 32) float32 gray of uint8 (n, h, w, c), area-averaged (nearest when smaller)."""
    g = x.astype(np.float32).mean(axis=-1) if x.shape[-1] == 3 else x[..., 0].astype(np.float32)
    n, h, w = g.shape
    for axis, size in ((1, h), (2, w)):
        if size >= 32:
            edges = (np.arange(32) * size) // 32
            counts = np.diff(np.append(edges, size)).astype(np.float32)
            g = np.add.reduceat(g, edges, axis=axis) / (counts[:, None] if axis == 1 else counts[None, :])
        else:
            g = np.take(g, (np.arange(32) * size) // 32, axis=axis)
    return g


def phash(x, batch=4096):
    """(hashes uint64 (n,), flat bool (n,)) of uint8 images (n, h, w, c)."""
    d = _dct_matrix()
    weights = (1 << np.arange(64, dtype=np.uint64))
    out = np.empty(len(x), np.uint64)
    flat = np.empty(len(x), bool)
    for i in range(0, len(x), batch):
        g = _gray32(x[i:i + batch])
        flat[i:i + batch] = g.reshape(len(g), -1).std(axis=1) < FLAT_STD
        low = (d @ g @ d.T)[:, :8, :8].reshape(len(g), 64)
        med = np.median(low[:, 1:], axis=1, keepdims=True)
        out[i:i + batch] = ((low > med).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return out, flat


def near_pairs(h, bits=NEAR_BITS):
    """(i, j) with i < j of the hashes at most `bits` bits apart. Pigeonhole: split the 64 bits in
    bits + 1 bands; such a pair agrees exactly on one band at least, so only pairs sharing a band
    value are compared (sort per band, pairs inside each run of equal values)."""
    n = len(h)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    edges = np.linspace(0, 64, bits + 2).astype(int)
    found = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (h >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.argsort(band, kind="stable")
        sb = band[order]
        starts = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for size in np.unique(sizes[(sizes > 1) & (sizes <= BIG_RUN)]):
            runs = starts[sizes == size]  # every short run of this length at once
            for r in range(0, len(runs), max(1, 2**22 // (size * size))):  # bounded memory
                members = order[runs[r:r + max(1, 2**22 // (size * size)), None] + np.arange(size)[None, :]]
                a, b = np.triu_indices(size, 1)
                i, j = members[:, a].ravel(), members[:, b].ravel()
                close = np.bitwise_count(h[i] ^ h[j]) <= bits
                found.append(_keys(i[close], j[close], n))
        for start, size in zip(starts[sizes > BIG_RUN], sizes[sizes > BIG_RUN]):
            members = order[start:start + size]  # a long run (many alike images): in row blocks
            for r in range(0, size, 256):
                rows = members[r:r + 256]
                close = np.bitwise_count(h[rows][:, None] ^ h[members][None, :]) <= bits
                close &= np.arange(size)[None, :] > (r + np.arange(len(rows)))[:, None]
                i, j = np.nonzero(close)
                found.append(_keys(rows[i], members[j], n))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.unique(np.concatenate(found))
    return keys // n, keys % n


def hash_blind(label, i, j, k):
    """Classes (bool (k,)) the hash cannot tell apart: their images' near pairs with other classes
    exceed CHANCE per image (such pairs are chance matches but for the rare relabelled copy)."""
    cross = label[i] != label[j]
    hits = np.bincount(label[i[cross]], minlength=k) + np.bincount(label[j[cross]], minlength=k)
    return hits > CHANCE * np.maximum(np.bincount(label, minlength=k), 1)


def pixel_close(take, i, j, batch=8192):
    """bool per pair: at most PIXEL_SHARE of the pixels more than PIXEL_LEVELS apart."""
    out = np.empty(len(i), bool)
    for s in range(0, len(i), batch):
        a, b = take(i[s:s + batch]), take(j[s:s + batch])
        far = (np.abs(a.astype(np.int16) - b) > PIXEL_LEVELS).reshape(len(a), -1)
        out[s:s + batch] = far.mean(axis=1) <= PIXEL_SHARE
    return out


def _take(splits):
    """Images by index over all splits (train first), without concatenating them."""
    starts = np.cumsum([0] + [len(s.y) for s in splits])

    def take(idx):
        k = np.searchsorted(starts, idx, side="right") - 1
        out = np.empty((len(idx),) + splits[0].x.shape[1:], splits[0].x.dtype)
        for n in np.unique(k):
            out[k == n] = splits[n].x[idx[k == n] - starts[n]]
        return out
    return take


def _keys(i, j, n):
    """One int64 per unordered pair (smaller index first), for np.unique."""
    return np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)


def exact_pairs(keys):
    """(i, j) of equal keys: each image paired with the first image (lowest index) of its key."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    first = np.repeat(order[starts], np.diff(np.r_[starts, len(keys)]))
    keep = first != order
    return first[keep], order[keep]


def content_hashes(x, paths=None):
    """Exact-content keys: sha256 of each file's bytes, else of the image's pixels."""
    if paths is not None:
        out = []
        for p in paths:
            with open(p, "rb") as f:
                out.append(hashlib.sha256(f.read()).hexdigest())
        return np.array(out)
    return np.array([hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest() for img in x])


# ---------------------------------------------------------------- gathering the splits
class Split:
    """One split's decoded images, labels, display names and (for image folders) file paths."""

    def __init__(self, name, x, y, names, paths=None):
        self.name, self.x, self.y, self.names, self.paths = name, x, np.asarray(y, int), names, paths


def _tree_split(folder, split, info):
    """A split of an image-folder tree: decoded through the cache, with the kept files' paths."""
    root = os.path.join(folder, split)
    mode = "L" if info.input_shape[-1] == 1 else "RGB"
    x, y, kept, skipped = folders.load_tree_listed(folder, split, info.classes, info.input_shape[:2], mode)
    return Split(split, x, y, [f"{split}/{r}" for r in kept], [os.path.join(root, r) for r in kept]), \
        [f"{split}/{s}" for s in skipped]


def gather(name, root):
    """(info, [Split], unreadable ['split/class/file: why'], other files ['path']) of a dataset."""
    info = catalog.get(name, root)
    where = store.folder(name, root)
    mod = catalog.loader(name, root)
    if mod.find(where) is None:
        raise DataError(f"{name} not found: {mod.missing_message(where)}")
    found = mod.counts(where) or {}
    splits, unreadable, others = [], [], []
    for s in info.splits:
        if s not in found:
            continue
        tree = any(os.path.isdir(os.path.join(where, s, c)) for c in info.classes)
        if tree:
            sp, bad = _tree_split(where, s, info)
            unreadable += bad
            for c in info.classes:
                d = os.path.join(where, s, c)
                if os.path.isdir(d):
                    others += [f"{s}/{c}/{e.name}" for e in sorted(os.scandir(d), key=lambda e: e.name)
                               if not e.name.startswith(".") and not folders.is_image_name(e.name)]
        else:
            x, y = store.load(name, root, s)
            sp = Split(s, x, y, [f"{s}[{i}]" for i in range(len(y))])
        splits.append(sp)
    return info, splits, unreadable, others


def gather_folder(path):
    """The same for a class-folder tree that is not imported (read in place, nothing written)."""
    from convzoo.data import imported

    src = folders.Source(path)
    if src.kind != "folder":
        raise DataError(f"{path}: data check reads a folder or an imported dataset's name; import "
                        f"an archive first (`convzoo data import NAME {path}`)")
    layout, groups, ignored, empty = imported.find_layout(src)
    classes = tuple(sorted({c for (_, c) in groups}))
    sides, kinds, good = [], set(), {}
    unreadable = []
    for (split, cls), names in groups.items():
        for n in names:
            why, size, kind = imported._inspect(src.local_path(n))
            if why:
                unreadable.append(f"{n}: {why}")
                continue
            sides.append(min(size))
            kinds.add(kind)
            good.setdefault(split or "all", []).append((n, classes.index(cls)))
    if not good:
        raise DataError(f"{path}: no readable images")
    color = "gray" if kinds == {"gray"} else "rgb"
    size = imported.choose_size(sides, color)
    info = catalog.DatasetInfo(name=os.path.basename(os.path.normpath(path)), title=path, classes=classes,
                               input_shape=(size, size, 1 if color == "gray" else 3), loader="imported",
                               splits=tuple(s for s in ("train", "validation", "test", "all") if s in good))
    splits = []
    for s in info.splits:
        items = sorted(good[s])
        mode = "L" if color == "gray" else "RGB"
        x = np.stack([folders.decode(src.local_path(n), (size, size), mode) for n, _ in items])
        splits.append(Split(s, x, [c for _, c in items], [n for n, _ in items],
                            [src.local_path(n) for n, _ in items]))
    others = [n for n, why in ignored if why.startswith("not an image")]
    notes = [f"empty class folder: {e}" for e in empty]
    return info, splits, unreadable, others, notes


# ---------------------------------------------------------------- the checks
def finding(kind, severity, count, message, examples=()):
    return {"check": kind, "severity": severity, "count": int(count), "message": message,
            "examples": [str(e) for e in list(examples)[:EXAMPLES]]}


def near_duplicates(splits, exact, near, flat, k):
    """(i, j, blind): the near pairs over all splits (train first) that are not exact copies and,
    in a class the hash is blind to (`blind`, bool per class), also pixel-close."""
    label = np.concatenate([s.y for s in splits])
    keep = np.flatnonzero(~flat)
    i, j = near_pairs(near[keep])
    i, j = keep[i], keep[j]
    differ = exact[i] != exact[j]
    i, j = i[differ], j[differ]
    blind = hash_blind(label, i, j, k)
    check = blind[label[i]] | blind[label[j]]
    held = ~check
    held[check] = pixel_close(_take(splits), i[check], j[check])
    return i[held], j[held], blind


def _duplicates(splits, i, j, tag):
    """Findings for pairs (i, j) of exact or near duplicates within a class and across classes in
    each split, and across splits (a later split's images that are in an earlier one: validation or
    test against train). Indices run over all splits, train first."""
    what = "near-duplicate" if tag == "near" else "exact duplicate"
    split_of = np.concatenate([np.full(len(s.y), k) for k, s in enumerate(splits)])
    label = np.concatenate([s.y for s in splits])
    names = [n for s in splits for n in s.names]
    out = []
    for k, sp in enumerate(splits):
        inside = (split_of[i] == k) & (split_of[j] == k)
        for same, word, label_words in ((True, "within", "of the same class"), (False, "across", "with two labels")):
            mask = inside & ((label[i] == label[j]) == same)
            if mask.any():
                imgs = np.union1d(i[mask], j[mask])
                ex = [f"{names[a]} = {names[b]}" for a, b in zip(i[mask][:EXAMPLES], j[mask][:EXAMPLES])]
                out.append(finding(f"{tag}-duplicates-{word}-classes", "warning", len(imgs),
                                   f"{sp.name}: {len(imgs)} images are {what}s {label_words} "
                                   f"({mask.sum()} pairs)", ex))
    for k, later in enumerate(splits):
        for e, earlier in enumerate(splits[:k]):
            a_in = (split_of[i] == e) & (split_of[j] == k)
            b_in = (split_of[j] == e) & (split_of[i] == k)
            theirs = np.concatenate([j[a_in], i[b_in]])
            mine = np.concatenate([i[a_in], j[b_in]])
            if not len(theirs):
                continue
            leaked = np.unique(theirs)
            blocking = later.name == "test"
            ex = [f"{names[p]} = {names[q]}" for p, q in zip(theirs[:EXAMPLES], mine[:EXAMPLES])]
            pct = 100 * len(leaked) / max(len(later.y), 1)
            relabelled = int(np.unique(theirs[label[theirs] != label[mine]]).size)
            out.append(finding(f"{tag}-leak-{later.name}", "error" if blocking else "warning", len(leaked),
                               f"{len(leaked)} {later.name} images ({pct:.2f}%) have a {what} in "
                               f"{earlier.name}" + (f", {relabelled} of them with another label" if relabelled else "")
                               + (" (a leak into the test split)" if blocking else ""), ex))
    return out


def run(info, splits, unreadable=(), others=(), notes=()):
    """Every check; returns the report `data check --json` prints."""
    k = len(info.classes)
    counts = {s.name: np.bincount(s.y, minlength=k).tolist() for s in splits}
    findings = []
    if unreadable:
        findings.append(finding("unreadable", "warning", len(unreadable),
                                f"{len(unreadable)} files cannot be decoded (left out of training)", unreadable))
    if others:
        findings.append(finding("not-images", "warning", len(others),
                                f"{len(others)} files in class folders are not images", others))
    for n in notes:
        findings.append(finding("empty-class-folder", "warning", 1, n))
    train = next((s for s in splits if s.name in ("train", "all")), None)
    if train is not None:
        c = np.bincount(train.y, minlength=k)
        none = [info.classes[i] for i in np.flatnonzero(c == 0)]
        if none:
            findings.append(finding("class-without-training-images", "error", len(none),
                                    f"{len(none)} classes have no {train.name} images", none))
        tiny = [f"{info.classes[i]} ({c[i]})" for i in np.flatnonzero((c > 0) & (c < TINY_CLASS))]
        if tiny:
            findings.append(finding("tiny-classes", "warning", len(tiny),
                                    f"{len(tiny)} classes have fewer than {TINY_CLASS} {train.name} images", tiny))
        if c.min() > 0 and c.max() / c.min() > IMBALANCE:
            findings.append(finding("imbalance", "warning", 1,
                                    f"the largest class has {c.max() / c.min():.1f}x the images of the smallest "
                                    f"({info.classes[int(c.argmax())]} {c.max()}, {info.classes[int(c.argmin())]} "
                                    f"{c.min()}): consider `train --class-weight balanced`"))
    small, modes = [], {}
    limit = SMALL * info.input_shape[0]
    for s in splits:
        for name, path in zip(s.names, s.paths or ()):
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    kind = "gray" if im.mode in ("1", "L", "LA", "I", "I;16", "F") else im.mode
            except OSError:
                continue
            modes.setdefault(kind, []).append(name)
            if min(w, h) < limit:
                small.append(f"{name} ({w}x{h})")
    if small:
        findings.append(finding("small-images", "warning", len(small),
                                f"{len(small)} images are under {SMALL:.0%} of the {info.input_shape[0]} px "
                                f"input size (upscaled, blurred)", small))
    if len(modes) > 1:
        findings.append(finding("mixed-modes", "info", sum(len(v) for v in modes.values()),
                                "colour modes: " + ", ".join(f"{m} {len(v)}" for m, v in sorted(modes.items())),
                                [f"{m}: {v[0]}" for m, v in sorted(modes.items())]))
    exact = np.concatenate([content_hashes(s.x, s.paths) for s in splits])
    findings += _duplicates(splits, *exact_pairs(exact), "exact")
    hashed = [phash(s.x) for s in splits]
    near, flat = np.concatenate([h for h, _ in hashed]), np.concatenate([f for _, f in hashed])
    i, j, blind = near_duplicates(splits, exact, near, flat, k)
    findings += _duplicates(splits, i, j, "near")
    flat = int(flat.sum())
    return {"dataset": info.name, "classes": list(info.classes), "input_shape": list(info.input_shape),
            "counts": counts, "near_threshold": {"hash": "pHash 64-bit", "max_bits": NEAR_BITS,
                                                   "pixel_checked_classes": [info.classes[c] for c in np.flatnonzero(blind)],
                                                   "pixel_rule": f"at most {PIXEL_SHARE:.0%} of pixels more than "
                                                                 f"{PIXEL_LEVELS} levels apart"},
            "flat_images_left_out_of_near_search": flat, "findings": findings,
            "blocking": any(f["severity"] == "error" for f in findings)}


def check(target, root=None):
    """The report for a dataset name, or for a class-folder tree at a path."""
    if os.path.isdir(target) and (os.sep in target or target not in catalog.names(root)):
        info, splits, unreadable, others, notes = gather_folder(target)
        return run(info, splits, unreadable, others, notes)
    info, splits, unreadable, others = gather(target, catalog.data_dir(root))
    return run(info, splits, unreadable, others)


def format_text(report):
    lines = [f"{report['dataset']}: {len(report['classes'])} classes, input {tuple(report['input_shape'])}"]
    names = list(report["counts"])
    lines.append(f"  {'class':<20}" + "".join(f"{s:>12}" for s in names))
    for i, c in enumerate(report["classes"]):
        lines.append(f"  {c[:20]:<20}" + "".join(f"{report['counts'][s][i]:>12,}" for s in names))
    for f in report["findings"]:
        ex = f"; e.g. {', '.join(f['examples'])}" if f["examples"] else ""
        lines.append(f"{f['severity']:<8}{f['check']}: {f['message']}{ex}")
    if not report["findings"]:
        lines.append("no problems found")
    t = report["near_threshold"]
    lines.append(f"(near-duplicates: {t['hash']}, at most {t['max_bits']} bits apart; "
                 f"{report['flat_images_left_out_of_near_search']} near-flat images left out"
                 + (f"; pixel-checked, as the hash matches them across classes: {', '.join(t['pixel_checked_classes'])}"
                    if t.get("pixel_checked_classes") else "") + ")")
    return "\n".join(lines)
