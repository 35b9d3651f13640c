"""Dogs vs. Cats: the textbook split (S10) as train/, validation/, test/ with cats/ and dogs/ inside,
and the importer that builds it from the Kaggle folder or .zip, Microsoft's PetImages, or a split tree."""
import os
import re

import numpy as np

from convzoo import data as catalog
from convzoo.data import folders
from convzoo.errors import DataError

CLASSES = catalog.get("cats_vs_dogs").classes  # ("cats", "dogs"): label 1 = dogs, for a sigmoid head
SIZE = (150, 150)
SPLITS = ("train", "validation", "test")
CLASS_WORDS = {"cat": "cats", "cats": "cats", "dog": "dogs", "dogs": "dogs"}
SPLIT_WORDS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "test": "test"}
FLAT_NAME = re.compile(r"(cat|dog)s?(?![a-z])")  # cat.12.jpg, dog_3.png; not category.jpg


def find(folder):
    """{split: path} of the split folders holding cats/ or dogs/; None without a train/ one."""
    folder = os.fspath(folder)
    found = {}
    for s in SPLITS:
        root = os.path.join(folder, s)
        if any(os.path.isdir(os.path.join(root, c)) for c in CLASSES):
            found[s] = root
    return found if "train" in found else None


def missing_message(folder):
    return (f"run `convzoo data import cats_vs_dogs SOURCE` with the Kaggle train folder or .zip "
            f"(cat.N.jpg, dog.N.jpg) or PetImages, or put train/, validation/ and test/ folders with "
            f"cats/ and dogs/ inside in {folder}")


def load(folder, split, strict=False):
    """(images uint8 (n, 150, 150, 3), labels uint8 (n,), 1 = dogs) for train, validation or test."""
    folder = os.fspath(folder)
    found = folders.find_split("cats_vs_dogs", folder, split, SPLITS, find, missing_message)
    if split not in found:
        raise DataError(f"{os.path.join(folder, split)}: no such split folder with cats/ and dogs/; "
                        f"re-import with `convzoo data import cats_vs_dogs SOURCE --overwrite`")
    return folders.load_tree(folder, split, CLASSES, SIZE, strict=strict)


def counts(folder):
    """{split: number of image files} (no decoding), or None."""
    found = find(folder)
    if found is None:
        return None
    return {s: folders.count_tree(root, CLASSES) for s, root in found.items()}


# ---------------------------------------------------------------- the importer


def import_source(source, folder, train=1000, validation=500, test=500, seed=0, overwrite=False):
    """Write the textbook split into folder: per class the first train+validation+test images that
    decode, in file-number order (a seeded shuffle for names without numbers); returns a report."""
    sizes = {"train": train, "validation": validation, "test": test}
    for s, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise DataError(f"--{s} must be a whole number of images, 0 or more, got {n!r}")
    if train == 0:
        raise DataError("--train must be at least 1 image per class")
    folder = folders.check_target(folder, source, overwrite)
    src = folders.Source(source)
    layout, groups, ignored = _find_layout(src)
    rng = np.random.default_rng(seed)
    queues = []
    for (split, cls), names in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        plan = [(split, sizes[split])] if split else [(s, sizes[s]) for s in SPLITS]
        queues.append({"cls": cls, "names": _order(names, rng), "plan": plan, "pos": 0,
                       "filled": {s: 0 for s, _ in plan}})
    report = {"folder": folder, "source": src.path, "layout": layout, "seed": seed,
              "written": {s: 0 for s in SPLITS if sizes[s]},
              "per_class": {c: {s: 0 for s in SPLITS if sizes[s]} for c in CLASSES},
              "skipped": list(src.links), "ignored": ignored, "short": []}
    with folders.building(folder, src, report.setdefault("notes", [])) as tmp:
        for s in SPLITS:
            if sizes[s]:
                for c in CLASSES:
                    os.makedirs(os.path.join(tmp, s, c))
        staging = os.path.join(tmp, ".incoming")
        os.makedirs(staging)
        _fill(src, queues, tmp, staging, report)
        os.rmdir(staging)
        for q in queues:
            for s, quota in q["plan"]:
                if q["filled"][s] < quota:
                    report["short"].append(f"{s}/{q['cls']}: {q['filled'][s]} of {quota}")
    return report


def _fill(src, queues, tmp, staging, report):
    """Copy candidates in order, in rounds of what is still needed, until every quota is met."""
    k = 0
    while True:
        batch = {}
        for q in queues:
            need = sum(quota - q["filled"][s] for s, quota in q["plan"])
            take = q["names"][q["pos"]:q["pos"] + need]
            q["pos"] += len(take)
            for name in take:
                batch[name] = (q, os.path.join(staging, f"{k:07d}{os.path.splitext(name)[1].lower()}"))
                k += 1
        if not batch:
            return
        failed = src.copy({name: dest for name, (q, dest) in batch.items()})
        for name, (q, dest) in batch.items():  # in each class's order
            why = failed.get(name) or folders.check_image(dest)
            split = next(s for s, quota in q["plan"] if q["filled"][s] < quota)
            out = os.path.join(tmp, split, q["cls"], name.rsplit("/", 1)[-1])
            if not why and os.path.exists(out):
                why = f"same file name as an image already in {split}/{q['cls']}"
            if why:
                report["skipped"].append((name, why))
                if os.path.exists(dest):
                    os.remove(dest)
                continue
            os.rename(dest, out)
            q["filled"][split] += 1
            report["written"][split] += 1
            report["per_class"][q["cls"]][split] += 1


def _find_layout(src):
    """(layout, {(split or None, class): [entry names]}, number of non-image files ignored)."""
    split_tree, class_folders, flat = {}, {}, {}
    ignored = 0
    for n in src.names:
        parts = n.split("/")
        if "__MACOSX" in parts:
            continue
        if not folders.is_image_name(n):
            ignored += 1  # Thumbs.db in PetImages, licence files, readmes
            continue
        low = [p.lower() for p in parts]
        if len(parts) >= 3 and low[-3] in SPLIT_WORDS and low[-2] in CLASS_WORDS:
            split_tree.setdefault((SPLIT_WORDS[low[-3]], CLASS_WORDS[low[-2]]), []).append(n)
        elif len(parts) >= 2 and low[-2] in CLASS_WORDS:
            class_folders.setdefault((None, CLASS_WORDS[low[-2]]), []).append(n)
        elif m := FLAT_NAME.match(low[-1]):
            flat.setdefault((None, CLASS_WORDS[m.group(1)]), []).append(n)
    for layout, groups in (("split", split_tree), ("class-folders", class_folders), ("kaggle", flat)):
        if groups:
            return layout, groups, ignored
    raise DataError(f"{src.path}: no cat or dog images found: expected cat.N.jpg and dog.N.jpg files "
                    f"(the Kaggle train folder or .zip), PetImages/Cat and PetImages/Dog, or train/, "
                    f"validation/ and test/ with cats/ and dogs/ inside")


def _number(name):
    digits = re.findall(r"\d+", os.path.splitext(name.rsplit("/", 1)[-1])[0])
    return int(digits[-1]) if digits else None


def _order(names, rng):
    """Numbered files by number, then the rest in a seeded shuffle."""
    numbered = sorted((n for n in names if _number(n) is not None), key=lambda n: (_number(n), n))
    rest = sorted(n for n in names if _number(n) is None)
    return numbered + [rest[i] for i in rng.permutation(len(rest))]
