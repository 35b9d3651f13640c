"""The state of one training run: per-epoch history, state.npz (weights, optimizer variables and
history, to --resume), the checkpoint rewritten after each epoch, its metadata, and the run folder
(history.csv, config.json, curves.png), and the lock that keeps a second training off one --output.
The training loop calls Run.end_epoch once per epoch.
"""
import contextlib
import csv
import dataclasses
import datetime
import errno
import io
import json
import math
import os
import platform
import re
import stat
import sys
import zipfile
import zlib

import numpy as np

from convzoo import __version__, backend, checkpoint, cpu, text, zoo
from convzoo.errors import ConvzooError, Diverged, StateError
from convzoo.fileio import atomic_path, open_temp, real_folder, save_figure, write_text

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


def run_folder(output):
    return os.path.splitext(output)[0] + "_run"


def state_path(output):
    return os.path.join(run_folder(output), "state.npz")


MAX_STATE_TEXT = 2**20  # plan and history: a few KB each, as JSON
NPY_HEADER = 4096  # an .npy member's header, beside its data
STATE_FIELD = re.compile(r"(plan|history|[wo](0|[1-9][0-9]{0,5}))\.npy")
PLAN_TYPES = {"dataset": str, "model": str, "recipe": dict, "seed": int, "limit": (int, type(None)),
              "data_dir": str}  # what --resume reads from the stored plan (values: plan._resume_plan)
PLAN_OPTIONAL = {"save_best": bool, "early_stop": (int, type(None)), "monitor": str,
                 "weights": (str, type(None)), "deterministic": bool, "decay_from": int,
                 "class_weight": (str, type(None))}  # absent in older run states


def read_state(path, shapes=None):
    """(plan, history, arrays) from a run's state.npz, each field checked before it is used: the
    member names (plan, history, w0.., o0..; with `shapes`, {name: shape} of the model's weights
    and optimizer variables, exactly those), each member's declared size against what it may need
    before a byte is inflated, dtypes (numbers; text for plan and history; never objects: pickles
    stay refused) and shapes. `arrays` is empty without `shapes`. One line names the bad field."""
    def bad(field, why):
        return StateError(f"{path}: {field} {why}; the run state is damaged or not convzoo's "
                          f"(train again without --resume, to another --output or with --overwrite)")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO would block a plain open
    except OSError as e:
        raise StateError(f"{path}: cannot read ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StateError(f"{path}: not a regular file")
        try:
            z = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as e:
            raise bad("the file", f"is not an .npz archive ({_first(e)})") from None
        with z:
            members = z.infolist()
            if len(members) > 16 + (len(shapes) if shapes is not None else 2 * 10**5):  # names next
                raise bad("the file", f"has {len(members):,} fields")
            names = [m.filename for m in members]
            seen = set()
            for name in names:
                if not STATE_FIELD.fullmatch(name) or name in seen:
                    raise bad(f"field {text.printable(name.removesuffix('.npy'))!r}",
                              "is repeated" if name in seen else "is not a run-state field")
                seen.add(name)
            want, have = {"plan", "history", *(shapes or ())}, {n.removesuffix(".npy") for n in names}
            missing, extra = sorted(want - have, key=_field_order), sorted(have - want, key=_field_order)
            if missing:
                raise bad(f"field {missing[0]}", "is missing")
            if extra and shapes is not None:
                raise bad(f"field {extra[0]}", "is extra: the model has no such weight or optimizer variable")
            byname = {m.filename.removesuffix(".npy"): m for m in members}
            plan = _json_field(z, byname["plan"], bad)
            history = _json_field(z, byname["history"], bad)
            arrays = {name: _array_field(z, byname[name], shape, bad) for name, shape in (shapes or {}).items()}
    _check_plan(plan, bad)
    _check_history(history, bad)
    return plan, history, arrays


# a damaged member: bad CRC, a broken deflate stream, encryption, an unknown compression method
READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


def _first(e):
    return text.printable(str(e).splitlines()[0][:100]) if str(e) else type(e).__name__


def _field_order(name):
    return (name[0], int(name[1:])) if name[1:].isdigit() else (name, -1)


def _npy_header(z, info, bad, need):
    """Open member `info` after checking its declared size (at most `need` bytes of data); return
    the open member, its shape and dtype."""
    name = info.filename.removesuffix(".npy")
    if info.file_size > need + NPY_HEADER:
        raise bad(f"field {name}", f"declares {info.file_size:,} bytes, more than the "
                                   f"{need + NPY_HEADER:,} it can need")
    try:
        m = z.open(info)
    except READ_ERRORS as e:
        raise bad(f"field {name}", f"cannot be read ({_first(e)})") from None
    try:
        version = np.lib.format.read_magic(m)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read:
            raise ValueError(f"npy format {version}")
        shape, _, dtype = read[version](m, max_header_size=NPY_HEADER)
    except READ_ERRORS as e:
        m.close()
        raise bad(f"field {name}", f"is not a NumPy array ({_first(e)})") from None
    if dtype.itemsize * math.prod(shape) > need:  # the header's own claim, before numpy allocates it
        m.close()
        raise bad(f"field {name}", f"declares {dtype.itemsize * math.prod(shape):,} bytes of {dtype}, more "
                                   f"than the {need:,} it can need")
    if dtype.hasobject:
        m.close()
        raise bad(f"field {name}", "is an object array (pickled Python objects are refused)")
    return m, shape, dtype


def _read_array(m, name, bad):
    try:
        m.seek(0)
        return np.lib.format.read_array(m, allow_pickle=False, max_header_size=NPY_HEADER)
    except READ_ERRORS as e:
        raise bad(f"field {name}", f"cannot be read ({_first(e)})") from None
    finally:
        m.close()


def _json_field(z, info, bad):
    name = info.filename.removesuffix(".npy")
    m, shape, dtype = _npy_header(z, info, bad, 4 * MAX_STATE_TEXT)
    if dtype.kind != "U" or shape != ():
        m.close()
        raise bad(f"field {name}", f"is {dtype} of shape {shape}, not text")
    try:
        return json.loads(str(_read_array(m, name, bad)))
    except (ValueError, RecursionError):
        raise bad(f"field {name}", "is not JSON") from None


def _array_field(z, info, shape, bad):
    name = info.filename.removesuffix(".npy")
    m, got, dtype = _npy_header(z, info, bad, 8 * math.prod(shape))
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        m.close()
        raise bad(f"field {name}", f"holds {dtype}, not numbers")
    if tuple(got) != tuple(shape):
        m.close()
        raise bad(f"field {name}", f"has shape {tuple(got)}; the model's needs {tuple(shape)} "
                                   f"(a run state of another model?)")
    return _read_array(m, name, bad)


def _check_plan(plan, bad):
    if not isinstance(plan, dict):
        raise bad("field plan", "is not a JSON object")
    for key, kind in {**PLAN_TYPES, **PLAN_OPTIONAL}.items():
        if key not in plan:
            if key in PLAN_OPTIONAL:
                continue
            raise bad("field plan", f"has no {key}")
        if not isinstance(plan[key], kind) or (isinstance(plan[key], bool) and kind is not bool):
            raise bad(f"field plan", f"has {key} {text.printable(repr(plan[key]))[:60]}, of the wrong type")
    recipe, fields = plan["recipe"], {f.name: f for f in dataclasses.fields(zoo.Recipe)}
    for key, value in recipe.items():
        if key not in fields:
            raise bad("field plan", f"has a recipe field {text.printable(key)[:60]!r} convzoo does not know")
        kind = type(fields[key].default)
        ok = (isinstance(value, bool) if kind is bool else
              isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (kind is float or isinstance(value, int)) if kind in (int, float) else isinstance(value, kind))
        if not ok:
            raise bad("field plan", f"has recipe {key} {text.printable(repr(value))[:60]}, which is not {kind.__name__}")


def _check_history(history, bad):
    if not isinstance(history, dict) or set(history) != set(COLUMNS):
        raise bad("field history", f"does not have the columns {', '.join(COLUMNS)}")
    n = len(history["epoch"]) if isinstance(history["epoch"], list) else -1
    for key in COLUMNS:
        values = history[key]
        if not isinstance(values, list) or len(values) != n or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            raise bad("field history", f"column {key} is not {max(n, 0)} numbers")
    if history["epoch"] != list(range(1, n + 1)):
        raise bad("field history", "epochs are not 1, 2, 3, ...")


def lock_path(output):
    return os.fspath(output) + ".lock"


@contextlib.contextmanager
def locked(output, log):
    """Hold `<output>.lock` (this PID and host) for the block: a second training to the same
    --output refuses, naming the first's PID; a lock left by a process that died on this host is
    taken over. Created with O_EXCL and O_NOFOLLOW, so a link there is never followed."""
    path, me = lock_path(output), (os.getpid(), platform.node())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for _ in range(5):  # another try after taking over a dead process's lock, or a race lost
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            _take_over(output, path, log)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{me[0]} {me[1]}\n")
        break
    else:
        raise ConvzooError(f"cannot take the lock {path}; try again")
    try:
        yield path
    finally:
        if _holder(path) == me:
            os.remove(path)


def _holder(path):
    """(pid, host) from a lock file; None when there is none, "?" when it is not a convzoo lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        return "?"  # a link (ELOOP), or unreadable
    try:
        text = os.read(fd, 256).decode("utf-8", "replace") if stat.S_ISREG(os.fstat(fd).st_mode) else ""
    finally:
        os.close(fd)
    parts = text.split()
    return (int(parts[0]), parts[1]) if len(parts) == 2 and parts[0].isdigit() else "?"


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def _take_over(output, path, log):
    """Refuse a lock held by a live process; move a dead one's lock aside (the caller retries)."""
    holder = _holder(path)
    if holder is None:  # released in the meantime
        return
    if holder == "?":
        raise ConvzooError(f"{path} is not a convzoo lock (a link, or damaged); remove it if no "
                           f"training writes {output}")
    pid, host = holder
    if host != platform.node() or _alive(pid):
        where = "" if host == platform.node() else f" on {host}"
        raise ConvzooError(f"{output} is being trained by PID {pid}{where}; wait for that run to end or "
                           f"give another --output (if no such run is left, remove {path})")
    stale = f"{path}.{os.getpid()}.stale"
    try:
        os.rename(path, stale)
    except FileNotFoundError:
        return
    if _holder(stale) != holder:  # another run took it over between the read and the rename: put it back
        with contextlib.suppress(OSError):
            os.link(stale, path)
    else:
        log(f"took over {path}: PID {pid}, which held it, is no longer running")
    os.remove(stale)


class Run:
    """Per-epoch bookkeeping of the training loop: log line, history, checkpoint, run folder."""

    def __init__(self, p, model, info, spec, n_train, n_val, log):
        self.p, self.model, self.info, self.spec = p, model, info, spec
        self.history = {k: [] for k in COLUMNS}
        self.n_train, self.n_val, self.log = n_train, n_val, log
        self.optimizer = None
        self.stop = None  # interrupt.Stop: the loop calls stop.check() after every step
        self.watch = None  # watch.Watch: progress, the run's ETA, --time-budget
        self.data = None  # (x_train, y_train, x_val, y_val)
        self.distribute = None  # the strategy and replica count, for the metadata
        self.started_from = started_from(p.weights)
        from convzoo import nets  # Keras: imported once training has set it up

        self._inference = nets.inference_model(model)
        # mixed precision: checkpoints stay float32, in a twin that takes the weights at each save
        self.float32_model = self._inference if p.recipe.precision == "float32" else float32_twin(self._inference)

    @property
    def done(self):
        return len(self.history["epoch"])

    @property
    def keeps_best(self):
        """The checkpoint holds the best epoch's weights (--save-best, --early-stop), not the last's."""
        return bool(self.p.save_best or self.p.early_stop)

    @property
    def best_epoch(self):
        """The epoch (1-based) with the best monitored value so far; ties go to the earlier one."""
        return best_epoch(self.history, self.p.monitor)

    @property
    def stopped_early(self):
        """The epoch at which --early-stop ended the run, or None."""
        return stopped_early(self.history, self.p.early_stop, self.p.monitor)

    def epochs_left(self):
        """The 0-based epochs still to run; none once --early-stop has ended the run."""
        return range(self.done, self.done if self.stopped_early else self.p.recipe.epochs)

    def file(self, name):
        """A file in the run folder, the folder checked (lstat) to be a real one, not a link."""
        return os.path.join(real_folder(self.p.run_dir, "run folder"), name)

    def save_epoch(self):
        """state.npz (weights, optimizer variables, history) and the checkpoint (unless it keeps an
        earlier, better epoch), together: both go to temp names, then the checkpoint is moved into
        place, then the state. A save that fails (a full disk) leaves the previous pair, and says so."""
        try:
            with atomic_path(self.file("state.npz")) as tmp:
                with open_temp(tmp) as f:
                    self.write_state(f)
                if not self.keeps_best or self.best_epoch == self.done:
                    checkpoint.save(self.to_save(), self.p.output, self.meta())
        except OSError as e:
            raise self.save_failed(e, f"saving epoch {self.done}", self.done - 1) from None

    def write_state(self, f):
        cfg = {**dataclasses.asdict(self.p), "recipe": dataclasses.asdict(self.p.recipe)}
        arrays = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(self.optimizer.variables)})
        np.savez(f, plan=json.dumps(cfg), history=json.dumps(self.history), **arrays)

    def save_failed(self, e, doing, held):
        """The one line for a failed write: why, what the checkpoint and state still hold (`held`
        epochs), and how to go on."""
        full = e.errno == errno.ENOSPC or "No space left" in str(e)  # h5py's OSError has no errno
        why = "no space left" if full else f"cannot write ({e.strerror or str(e).splitlines()[0][:200]})"
        out, then = self.p.output, "free some space and " if full else ""
        if not held:
            return ConvzooError(f"{why} {doing}; nothing of this run was saved; {then}start again")
        if self.keeps_best:
            best = best_epoch({k: v[:held] for k, v in self.history.items()}, self.p.monitor)
            kept = f"{out} holds epoch {best} (best {self.p.monitor}) and its state epoch {held}"
        else:
            kept = f"{out} and its state hold epoch {held}"
        return ConvzooError(f"{why} {doing}; {kept}; {then}continue with: {self.p.command(resume=True)}")

    def restore_state(self):
        """Continue after the last completed epoch of an earlier run."""
        shapes = {f"w{i}": tuple(w.shape) for i, w in enumerate(self.model.weights)}
        shapes.update({f"o{i}": tuple(v.shape) for i, v in enumerate(self.optimizer.variables)})
        _, self.history, arrays = read_state(state_path(self.p.output), shapes)
        weights = [arrays[f"w{i}"] for i in range(len(self.model.weights))]
        opt = [arrays[f"o{i}"] for i in range(len(self.optimizer.variables))]
        self.model.set_weights(weights)
        for var, value in zip(self.optimizer.variables, opt):
            var.assign(value)
        self.log(f"resuming after epoch {self.done} of {self.p.recipe.epochs}")

    def meta(self):
        h = self.history
        best = int(np.argmax(h["val_accuracy"])) if h["val_accuracy"] else None
        kept = self.best_epoch if self.keeps_best else self.done
        return {
            "format": checkpoint.FORMAT, "model": self.p.model, "source": self.spec.source,
            "params": int(self.model.count_params()),
            "dataset": self.p.dataset, "classes": list(self.info.classes),
            "input_shape": list(self.info.input_shape), "preprocess": self.info.preprocess,
            "head": self.spec.head, "recipe": dataclasses.asdict(self.p.recipe),
            "weights_init": self.p.weights, "started_from": self.started_from,
            "seed": self.p.seed, "deterministic": self.p.deterministic, "limit": self.p.limit,
            "class_weight": self.p.class_weight,
            "distribute": self.distribute,
            "train_images": self.n_train, "val_images": self.n_val,
            "epochs_run": len(h["loss"]), "history": h,
            "weights_from": "best epoch" if self.keeps_best else "last epoch",
            "weights_epoch": kept, "monitor": self.p.monitor if self.keeps_best else None,
            "early_stop": self.p.early_stop, "stopped_early": self.stopped_early,
            "best": None if best is None else {"epoch": best + 1,
                                               "val_accuracy": h["val_accuracy"][best]},
            "train_seconds": round(sum(h["seconds"]), 1),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "cpu": cpu.describe().removeprefix("CPU: "),
            "command": " ".join(["convzoo", *sys.argv[1:]]),  # as typed
            "repeat": self.p.command(),  # every option spelled out
        }

    def end_epoch(self, epoch, logs, seconds):
        row = {"epoch": epoch + 1, "seconds": round(seconds, 2),
               **{k: float(logs[k]) for k in COLUMNS[1:5] if k in logs}}
        check_finite(row, epoch)
        for k in COLUMNS:
            self.history[k].append(row.get(k))
        eta = self.watch.end_epoch(epoch, row) if self.watch else ""  # " - run ETA ..."
        self.save_epoch()
        try:
            write_text(self.file("history.csv"), history_csv(self.history))
        except OSError as e:
            raise self.save_failed(e, "writing history.csv", self.done) from None
        # said once the epoch is on disk: a Ctrl-C after this line finds it there
        self.log(f"epoch {epoch + 1}/{self.p.recipe.epochs} - " +
                 " - ".join(f"{k} {row[k]:.4f}" for k in COLUMNS[1:5] if row.get(k) is not None) +
                 f" - {seconds:.1f}s" + ("" if self.stopped_early else eta))
        if self.stopped_early:
            self.log(f"early stop: {self.p.monitor} has not improved for {self.p.early_stop} epochs; "
                     f"keeping epoch {self.best_epoch}'s weights")

    def to_save(self):
        """The model a checkpoint holds: the inference model, or its float32 twin, kept in step."""
        if self.float32_model is not self._inference:
            self.float32_model.set_weights(self._inference.get_weights())
        return self.float32_model

    def finish(self):
        try:
            return self._finish()
        except OSError as e:
            raise self.save_failed(e, "finishing the run", self.done) from None

    def _finish(self):
        from convzoo import plots

        meta = self.meta()
        if self.keeps_best:  # the weights stay the best epoch's; the history covers every epoch
            best, _ = checkpoint.load(self.p.output)
            checkpoint.save(best, self.p.output, meta)
        else:
            checkpoint.save(self.to_save(), self.p.output, meta)
        cfg = {k: meta[k] for k in ("repeat", "model", "source", "dataset", "recipe", "seed", "deterministic",
                                    "limit", "weights_init", "early_stop", "monitor", "stopped_early",
                                    "weights_epoch", "train_images", "val_images", "distribute", "versions",
                                    "cpu", "command")}
        cfg["data_dir"] = self.p.data_dir
        write_text(self.file("config.json"), json.dumps(cfg, indent=2) + "\n")
        save_figure(plots.curves(self.history, self.p.model, self.p.dataset), self.file("curves.png"))
        return meta


def check_finite(logs, epoch):
    """The one NaN check, by every loop after each training step and at each epoch's end: Diverged
    when the loss (or the validation loss) is missing, NaN or infinite."""
    bad = [k for k in ("loss", "val_loss") if k in logs and not math.isfinite(float(logs[k]))]
    if bad or "loss" not in logs:
        key = bad[0] if bad else "loss"
        raise Diverged(f"training diverged: {key} is {float(logs.get(key, math.nan))} in epoch {epoch + 1}; "
                       f"the last good checkpoint is kept; try a lower --learning-rate")


def best_epoch(history, monitor):
    values = history.get(monitor) or []
    scored = [(v if monitor == "val_loss" else -v, i) for i, v in enumerate(values) if v is not None]
    return min(scored)[1] + 1 if scored else None


def stopped_early(history, patience, monitor):
    """The last epoch if `monitor` had not improved for `patience` epochs by then, else None."""
    best = best_epoch(history, monitor)
    done = len(history["epoch"])
    return done if patience and best and done - best >= patience else None


def started_from(weights):
    """What a run that starts from a convzoo checkpoint (--weights) needs to be reproduced: that
    checkpoint's file name, model, epochs, time and its own origin (None otherwise)."""
    if weights in (None, "imagenet", "none"):
        return None
    try:
        meta = checkpoint.read_meta(weights)
    except ConvzooError:
        return None  # a plain Keras weights file (VGG16)
    keep = ("model", "dataset", "seed", "limit", "recipe", "weights_from", "epochs_run", "train_seconds",
            "started_from")
    return {"file": os.path.basename(weights), **{k: meta.get(k) for k in keep}}


def float32_twin(model):
    """A float32 copy of a mixed-precision Sequential (same layers and names, own weights)."""
    keras = backend.load()
    cfg = model.get_config()
    for layer in cfg["layers"]:
        if "dtype" in layer["config"]:
            layer["config"]["dtype"] = "float32"
    return keras.Sequential.from_config(cfg)


def history_csv(history):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for i in range(len(history["epoch"])):
        w.writerow(["" if history[k][i] is None else history[k][i] for k in COLUMNS])
    return out.getvalue()


def versions():
    import importlib.metadata as md

    out = {"convzoo": __version__, "python": platform.python_version()}
    for pkg in ("keras", "tensorflow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


