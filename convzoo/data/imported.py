"""Your own images: any class-folder dataset, imported from a folder, .zip or .tar(.gz) into
DATA_DIR/NAME/{train,validation,test}/<class>/ with its description in DATA_DIR/NAME/dataset.json.

Layouts: <class>/<images>, or train/<class>/... with optional validation/ (or val/) and test/.
Splits the source lacks are cut per class, seeded: by default 10% validation and 10% test of each
class's images (80/10/10). Classes are the folder names in sorted (code point) order: label i is the
i-th name. The source is read through folders.Source, so its guards (links, devices, archive paths,
byte limits) apply here as to the built-in importers.
"""
import datetime
import hashlib
import json
import os

import numpy as np
from PIL import Image

from convzoo import __version__, images
from convzoo import data as catalog
from convzoo.data import folders
from convzoo.errors import DataError, ImageError
from convzoo.fileio import write_text

SPLITS = ("train", "validation", "test")
SPLIT_WORDS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "test": "test", "testing": "test"}
SIZES = (28, 32, 48, 64, 96, 128, 150)  # the default input size: the largest of these the images fill
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
IGNORED_DIRS = {"__MACOSX"}


# ---------------------------------------------------------------- the loader interface


def find(folder):
    """{split: path} of the splits an imported dataset has, or None without its dataset.json."""
    folder = os.fspath(folder)
    if catalog.read_card(folder) is None:
        return None
    found = {s: os.path.join(folder, s) for s in SPLITS if os.path.isdir(os.path.join(folder, s))}
    return found if "train" in found else None


def missing_message(folder):
    name = os.path.basename(os.path.normpath(folder))
    return (f"import it with `convzoo data import {name} SOURCE` (a folder, .zip or .tar.gz of "
            f"<class>/<images>)")


def _info(folder):
    card = catalog.read_card(folder)
    if card is None:
        raise DataError(f"{folder}: no {catalog.CARD}: {missing_message(folder)}")
    return catalog.from_card(card, os.path.basename(os.path.normpath(folder)))


def load(folder, split, strict=False):
    """(x uint8 (n, size, size, 3 or 1), y uint8 (n,)) of one split."""
    folder = os.fspath(folder)
    info = _info(folder)
    if split not in SPLITS:
        raise DataError(f"{info.name} has no '{split}' split; choose from {', '.join(SPLITS)}")
    if not os.path.isdir(os.path.join(folder, split)):
        raise DataError(f"{os.path.join(folder, split)}: no such split folder; re-import with "
                        f"`convzoo data import {info.name} SOURCE --overwrite`")
    h, w, c = info.input_shape
    return folders.load_tree(folder, split, info.classes, (h, w), strict=strict,
                             mode="L" if c == 1 else "RGB")


def counts(folder):
    """{split: number of image files} (no decoding), or None."""
    found = find(folder)
    if found is None:
        return None
    classes = _info(folder).classes
    return {s: folders.count_tree(root, classes) for s, root in found.items()}


# ---------------------------------------------------------------- the importer


def signature(src):
    """What says the source is unchanged: names, sizes and modification times of its files (a
    folder), or the archive's own size and time."""
    h = hashlib.sha256(src.kind.encode())
    if src.kind != "folder":
        st = os.stat(src.path)
        h.update(f"{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()
    for name in src.names:
        try:
            st = os.lstat(src.local_path(name))
            h.update(f"\n{name}\0{st.st_size}\0{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"\n{name}\0?".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _fraction(value, option):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DataError(f"--{option} is the fraction of each class cut for {option}, from 0 up to "
                        f"(not including) 1; got {value!r}")
    return float(value)


def _utf8(name, src):
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise DataError(f"{src.path}: the folder name '{shown}' is not valid UTF-8; rename it "
                        f"(class names go into the checkpoint); nothing was imported") from None
    return name


def find_layout(src):
    """(layout, {(split or None, class): [entry names]}, [(entry, why it is left out)], empty classes).

    The longest folder prefix all images share is a wrapper (shapes.zip holding shapes/...) and is
    dropped; what is left is either <split>/<class>/<file> or <class>/<file>."""
    entries, ignored = [], []
    for n in src.names:
        parts = n.split("/")
        if IGNORED_DIRS & set(parts[:-1]) or any(p.startswith(".") for p in parts):
            continue  # macOS resource forks, .DS_Store, hidden folders
        entries.append(parts)
    pictures = [p for p in entries if folders.is_image_name(p[-1])]
    if not pictures:
        raise DataError(f"{src.path}: no images found (expected <class>/<images> or "
                        f"train/<class>/<images>; image files end in {', '.join(images.EXTENSIONS)})")
    prefix = os.path.commonprefix([p[:-1] for p in pictures])
    # keep the class level: a prefix that swallows every folder would make the classes the files
    while prefix and all(len(p) - 1 == len(prefix) for p in pictures):
        prefix = prefix[:-1]
    depth = len(prefix)
    tops = {p[depth].lower() for p in pictures if len(p) > depth + 1}
    split_layout = "train" in {SPLIT_WORDS.get(t) for t in tops} and all(t in SPLIT_WORDS for t in tops)
    want = 3 if split_layout else 2  # path parts below the prefix: [split/]class/file
    groups, seen_split_dirs = {}, {}
    for parts in entries:
        if parts[:depth] != prefix:
            ignored.append(("/".join(parts), "outside the dataset's folder"))
            continue
        rest = parts[depth:]
        name = "/".join(parts)
        if len(rest) < want:
            ignored.append((name, "not inside a class folder"))
            continue
        if len(rest) > want:
            raise DataError(f"{src.path}: '{'/'.join(parts[:-1])}' is nested deeper than the layout "
                            f"({'train/<class>/<images>' if split_layout else '<class>/<images>'}); "
                            f"flatten it or import its parent; nothing was imported")
        if not folders.is_image_name(rest[-1]):
            ignored.append((name, "not an image file (by its name)"))
            continue
        split = None
        if split_layout:
            split = SPLIT_WORDS[rest[0].lower()]
            if seen_split_dirs.setdefault(split, rest[0]) != rest[0]:
                raise DataError(f"{src.path}: both {seen_split_dirs[split]}/ and {rest[0]}/ hold the "
                                f"{split} split; keep one; nothing was imported")
        cls = _utf8(rest[-2], src)
        groups.setdefault((split, cls), []).append(name)
    empty = []
    if src.kind == "folder":  # class folders with nothing in them are not in src.names
        base = os.path.join(src.path, *prefix)
        for split_dir in ([seen_split_dirs.get(s) for s in SPLITS] if split_layout else [""]):
            if split_dir is None:
                continue
            where = os.path.join(base, split_dir)
            try:
                dirs = [e.name for e in os.scandir(where) if e.is_dir(follow_symlinks=False)
                        and not e.name.startswith(".") and e.name not in IGNORED_DIRS]
            except OSError:
                continue
            have = {c for (_, c) in groups}
            empty += [f"{split_dir + '/' if split_dir else ''}{d}" for d in sorted(dirs) if d not in have]
    return ("split" if split_layout else "class-folders"), groups, ignored, empty


def _inspect(path):
    """(why it is unreadable or None, (w, h), colour kind 'gray'/'rgb') of an image file."""
    why = folders.check_image(path)
    if why:
        return why, None, None
    try:
        with Image.open(path) as im:
            size, mode = im.size, im.mode
        if mode in GRAY_MODES:
            return None, size, "gray"
        arr = images.read(path, "RGB")
        gray = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
        return None, size, "gray" if gray else "rgb"
    except (OSError, ImageError, ValueError) as e:
        return f"cannot decode image ({e})", None, None


def choose_size(shorter_sides, color):
    """The default input size: the largest of SIZES no bigger than the median shorter side (150 at
    most, the book's size for photos on a CPU; 28 or 32 at least)."""
    m = float(np.median(shorter_sides))
    floor = 28 if color == "gray" else 32
    fits = [s for s in SIZES if floor <= s <= m]
    return fits[-1] if fits else floor


def import_source(source, folder, overwrite=False, validation=0.1, test=0.1, seed=0, image_size=None,
                  color=None):
    """Build folder/{train,validation,test}/<class>/ and folder/dataset.json from SOURCE; returns a
    report (written, per_class, skipped, notes) for the command line."""
    validation, test = _fraction(validation, "validation"), _fraction(test, "test")
    if validation + test >= 1:
        raise DataError(f"--validation {validation} and --test {test} leave no training images")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"--seed must be a whole number, got {seed!r}")
    if image_size is not None and (not isinstance(image_size, int) or not 8 <= image_size <= 512):
        raise DataError(f"--image-size must be a whole number of pixels from 8 to 512, got {image_size!r}")
    if color not in (None, "rgb", "gray"):
        raise DataError(f"--color is rgb or gray, not {color!r}")
    folder = folders.check_target(folder, source, overwrite)
    real_src, real_dst = os.path.realpath(source), os.path.realpath(folder)
    if os.path.isdir(real_src) and os.path.commonpath([real_src, real_dst]) == real_src:
        raise DataError(f"the target {folder} is inside the source {source}; import into a data folder "
                        f"outside it (--data-dir)")
    src = folders.Source(source)
    layout, groups, ignored, empty = find_layout(src)
    if empty:
        raise DataError(f"{src.path}: class folder '{empty[0]}' holds no images"
                        f"{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}; add images or "
                        f"remove it; nothing was imported")
    classes = sorted({c for (_, c) in groups})
    if len(classes) < 2:
        raise DataError(f"{src.path}: only one class folder ('{classes[0]}'); a classifier needs two "
                        f"or more folders of images, one per class")
    given = sorted({s for (s, _) in groups if s})
    report = {"folder": folder, "source": src.path, "layout": layout, "skipped": list(src.links),
              "ignored": list(ignored), "written": {}, "per_class": {}, "notes": []}
    with folders.building(folder, src, report.setdefault("notes", [])) as tmp:
        staging = os.path.join(tmp, ".incoming")
        os.makedirs(staging)
        wanted, where = {}, {}
        for k, ((split, cls), names) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))):
            for name in names:
                dest = os.path.join(staging, f"{len(wanted):08d}{os.path.splitext(name)[1].lower()}")
                wanted[name], where[name] = dest, (split, cls)
        failed = src.copy(wanted)
        good = {}  # (split or None, class) -> [(entry name, staged path)]
        shorter, kinds = [], set()
        for name, dest in wanted.items():
            why = failed.get(name)
            size = kind = None
            if not why:
                why, size, kind = _inspect(dest)
            if why:
                report["skipped"].append((name, why))
                if os.path.exists(dest):
                    os.remove(dest)
                continue
            shorter.append(min(size))
            kinds.add(kind)
            good.setdefault(where[name], []).append((name, dest))
        no_images = [c for c in classes if not any(c == gc for (_, gc) in good)]
        if no_images:
            first = next((f"{n}: {w}" for n, w in report["skipped"] if where.get(n, (0, ""))[1] == no_images[0]), "")
            raise DataError(f"{src.path}: none of the images of class '{no_images[0]}' can be read "
                            f"(first: {first}); nothing was imported")
        if color is None:
            color = "gray" if kinds == {"gray"} else "rgb"
            report["notes"].append(f"colour: {color} ({'every image is grayscale' if color == 'gray' else 'some images are in colour'}; "
                                   f"--color to choose)")
        if image_size is None:
            image_size = choose_size(shorter, color)
            report["notes"].append(f"image size: {image_size}x{image_size} (median shorter side "
                                   f"{int(np.median(shorter))} px, images {min(shorter)}-{max(shorter)} px; "
                                   f"--image-size to choose)")
        rng = np.random.default_rng(seed)
        per_class = {c: dict.fromkeys(SPLITS, 0) for c in classes}
        for cls in classes:
            pool = sorted(good.get(("train", cls), []) + good.get((None, cls), []))
            plan = {s: sorted(good.get((s, cls), [])) for s in ("validation", "test")}
            order = rng.permutation(len(pool))
            pool = [pool[i] for i in order]
            cut = {}
            for s, frac in (("test", test), ("validation", validation)):
                if s in given:
                    continue
                n = int(round(frac * len(pool))) if len(pool) > 1 else 0
                n = min(n, len(pool) - 1 - sum(cut.values()))  # one image stays in train
                cut[s] = max(n, 0)
            start = 0
            for s in ("test", "validation"):
                if s in cut:
                    plan[s] = pool[start:start + cut[s]]
                    start += cut[s]
            plan["train"] = pool[start:]
            for s in SPLITS:
                os.makedirs(os.path.join(tmp, s, cls), exist_ok=True)
                for name, dest in plan[s]:
                    out = os.path.join(tmp, s, cls, name.rsplit("/", 1)[-1])
                    if os.path.exists(out):  # e.g. a.JPG and a.jpg on a case-insensitive disk
                        root, ext = os.path.splitext(out)
                        out = f"{root}-{per_class[cls][s]}{ext}"
                    os.rename(dest, out)
                    per_class[cls][s] += 1
        os.rmdir(staging)
        written = {s: sum(per_class[c][s] for c in classes) for s in SPLITS}
        for s in SPLITS:
            if not written[s]:
                report["notes"].append(f"warning: the {s} split is empty (too few images per class)")
        card = {
            "format": 1, "name": os.path.basename(folder), "classes": classes,
            "class_order": "folder names sorted by code point; label i is the i-th",
            "image_size": image_size, "color": color, "layout": layout,
            "splits_given": given, "splits_cut": {"validation": validation, "test": test,
                                                  "of": "each class's images in train/ or the class folders"},
            "seed": seed, "counts": {s: {c: per_class[c][s] for c in classes} for s in SPLITS},
            "source": src.path, "source_kind": src.kind, "source_signature": signature(src),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "convzoo": __version__,
            "skipped": [{"file": n, "reason": why} for n, why in report["ignored"] + report["skipped"]],
        }
        write_text(os.path.join(tmp, catalog.CARD), json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        report["written"] = written
        report["per_class"] = {c: per_class[c] for c in classes}
    return report


def name_for(path):
    """A dataset name from a folder's name: lower case, other characters as '-'."""
    import re

    base = os.path.basename(os.path.normpath(os.path.abspath(path)))
    base = re.sub(r"\.(zip|tar|tar\.gz|tgz)$", "", base.lower())
    name = re.sub(r"[^a-z0-9_-]+", "-", base).strip("-_")[:64]
    return name or "images"


def import_once(path, root):
    """`convzoo train PATH`: (name, report or None, message): the import of PATH under its folder's
    name, reused while the source is unchanged (same files, sizes and times), redone when it changed."""
    name = name_for(path)
    mod, _ = catalog.importer(name, root)
    if mod is not __import__(__name__, fromlist=["_"]):
        raise DataError(f"{path}: its folder name '{name}' is a built-in dataset; import it with "
                        f"`convzoo data import NEWNAME {path}` and train NEWNAME")
    folder = os.path.join(root, name)
    card = catalog.read_card(folder)
    source = os.path.abspath(path)
    if card is not None and card.get("source") != source:
        raise DataError(f"a dataset '{name}' imported from {card.get('source')} is already in {root}; "
                        f"import {path} under another name: `convzoo data import NAME {path}`")
    if card is not None and card.get("source_signature") == signature(folders.Source(path)):
        return name, None, f"using {name} in {folder} (imported from {source}, unchanged since {card.get('date')})"
    again = card is not None
    report = import_source(path, folder, overwrite=again)
    return name, report, (f"{source} changed since its import: imported again as {name}" if again
                          else f"importing {source} as dataset {name} (into {folder})")
