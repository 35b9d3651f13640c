"""The state of one training run: per-epoch history, state.npz (weights, optimizer variables and
history, to --resume), the checkpoint rewritten after each epoch, its metadata, and the run folder
(history.csv, config.json, curves.png), and the lock that keeps a second training off one --output.
Every training loop calls Run.end_epoch once per epoch.
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
import stat
import sys

import numpy as np

from convzoo import __version__, backend, checkpoint, cpu
from convzoo.errors import ConvzooError, Diverged
from convzoo.fileio import atomic_path, open_temp, real_folder, save_figure, write_text

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


def run_folder(output):
    return os.path.splitext(output)[0] + "_run"


def state_path(output):
    return os.path.join(run_folder(output), "state.npz")


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
    """Per-epoch bookkeeping shared by both loops: log line, history, checkpoint, run folder."""

    def __init__(self, p, model, info, spec, n_train, n_val, log):
        self.p, self.model, self.info, self.spec = p, model, info, spec
        self.history = {k: [] for k in COLUMNS}
        self.n_train, self.n_val, self.log = n_train, n_val, log
        self.optimizer = None
        self.stop = None  # interrupt.Stop: the loops call stop.check() after every step
        self.watch = None  # watch.Watch: progress, the run's ETA, --time-budget
        self.data = None  # (x_train, y_train, x_val, y_val)
        self.distribute = None  # the strategy and replica count, for the metadata
        self.started_from = started_from(p.weights)
        self._source = inference_model(model)
        # mixed precision: checkpoints stay float32, in a twin that takes the weights at each save
        self.saved_model = self._source if p.recipe.precision == "float32" else float32_twin(self._source)

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
        with np.load(state_path(self.p.output), allow_pickle=False) as f:
            self.history = json.loads(str(f["history"]))
            weights = [f[f"w{i}"] for i in range(len(self.model.weights))]
            opt = [f[f"o{i}"] for i in range(len(self.optimizer.variables))]
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
        bad = [k for k in ("loss", "val_loss") if k in row and not math.isfinite(row[k])]
        if bad or "loss" not in row:
            raise Diverged(f"training diverged: {bad[0] if bad else 'loss'} is "
                           f"{row.get(bad[0] if bad else 'loss', 'nan')} in epoch {epoch + 1}; "
                           f"the last good checkpoint is kept; try a lower --learning-rate")
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
        if self.saved_model is not self._source:
            self.saved_model.set_weights(self._source.get_weights())
        return self.saved_model

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


def inference_model(model):
    """The model without its augmentation layers (identity outside training), sharing its weights.

    Checkpoints hold this one: predict runs no random layers, and Keras 3.15 cannot reload a
    saved RandomShear (its stored factors fail its own range check).
    """
    from convzoo import nets

    keep = [layer for layer in model.layers if not nets.is_augmentation(layer)]
    if len(keep) == len(model.layers):
        return model
    keras = backend.load()
    return keras.Sequential([keras.Input(shape=model.input_shape[1:]), *keep], name=model.name)


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


