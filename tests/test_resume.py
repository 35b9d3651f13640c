"""Crash-safe training: Ctrl-C, SIGKILL, --resume, NaN, --save-best."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import SAMPLE, interrupt_after_epoch, invoke


def epochs_in(path):
    return [int(r["epoch"]) for r in csv.DictReader(open(path))]


def test_ctrl_c_then_resume_gives_a_gapless_history(runner, tmp_path, monkeypatch):
    from convzoo import train

    real_end = interrupt_after_epoch(monkeypatch, 1)
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "4", "--limit", "600",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 130
    assert "interrupted" in res.output and "holds epoch 2" in res.output and "--resume" in res.output
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2]
    monkeypatch.setattr(train.Run, "end_epoch", real_end)

    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "1", "--resume",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "has already run 2 epochs; give --epochs 2 or more" in res.output
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--seed", "3", "--resume",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "stored run, which has seed 0, not 3" in res.output
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--resume", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    assert "resuming after epoch 2 of 4" in res.output
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2, 3, 4]
    from convzoo import checkpoint

    assert checkpoint.read_meta(tmp_path / "m.h5")["history"]["epoch"] == [1, 2, 3, 4]


def test_resume_without_a_run_says_so(runner):
    res = invoke(runner, "train", "mnist", "--resume", "--output", "none.h5")
    assert res.exit_code == 1 and "nothing to resume" in res.output


def test_nan_loss_stops_with_a_clear_message_and_no_bad_file(runner, tmp_path):
    res = invoke(runner, "train", "mnist", "--model", "mnist-cnn", "--epochs", "3", "--limit", "300",
                 "--optimizer", "sgd", "--learning-rate", "1e12", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "training diverged" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "m.h5").exists()


def test_nan_after_good_epochs_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from convzoo import checkpoint, train

    p = train.plan("mnist", "mlp", output=str(tmp_path / "m.h5"), data_dir=str(SAMPLE), limit=600, epochs=3)
    real_end = train.Run.end_epoch

    def poison(self, epoch, logs, seconds):
        return real_end(self, epoch, {**logs, "loss": float("nan")} if epoch == 2 else logs, seconds)

    monkeypatch.setattr(train.Run, "end_epoch", poison)
    with pytest.raises(train.Diverged, match="loss is nan in epoch 3"):
        train.train(p, log=lambda m: None)
    assert checkpoint.read_meta(tmp_path / "m.h5")["epochs_run"] == 2


def test_save_best_keeps_the_best_epoch(runner, tmp_path):
    from convzoo import checkpoint

    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "3", "--limit", "600",
                 "--save-best", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0, res.output
    meta = checkpoint.read_meta(tmp_path / "m.h5")
    assert meta["weights_from"] == "best epoch" and meta["epochs_run"] == 3
    assert meta["best"]["val_accuracy"] == max(meta["history"]["val_accuracy"])


@pytest.mark.shared("mnist")
def test_sigkill_after_an_epoch_then_resume(shared_datasets, tmp_path):
    """A real `convzoo train` killed with SIGKILL mid-run leaves a loadable checkpoint or none."""
    from convzoo import checkpoint

    cmd = [sys.executable, "-m", "convzoo", "train", "mnist", "--model", "mnist-cnn", "--limit", "3000",
           "--epochs", "4", "--data-dir", str(shared_datasets), "--output", str(tmp_path / "k.h5")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = tmp_path / "k_run" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(epochs_in(history)) >= 1:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # land somewhere inside the second epoch (or its save)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]  # temp files never replace good ones
    if (tmp_path / "k.h5").exists():
        checkpoint.load(tmp_path / "k.h5")
    res = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert epochs_in(history) == [1, 2, 3, 4]
    model, meta = checkpoint.load(tmp_path / "k.h5")
    assert meta["epochs_run"] == 4


def test_full_disk_and_unwritable_folder_are_found_before_training(runner, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    with monkeypatch.context() as m:
        m.setattr("convzoo.fileio.shutil.disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
        res = invoke(runner, "train", "mnist", "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1 and "not enough disk space" in res.output and "epoch" not in res.output
    with monkeypatch.context() as m:
        m.setattr("convzoo.fileio._writable", lambda folder: False)  # root may write anywhere
        res = invoke(runner, "train", "mnist", "--data-dir", SAMPLE, "--output", "out/m.h5")
    assert res.exit_code == 1 and "permission denied" in res.output and "epoch" not in res.output
    open("afile", "w").close()
    res = invoke(runner, "train", "mnist", "--data-dir", SAMPLE, "--output", "afile/m.h5")
    assert res.exit_code == 1 and "afile is a file, not a folder" in res.output


def full_disk(monkeypatch, writer, at_epoch):
    """The `writer` of the epoch-`at_epoch` (1-based) save writes a few bytes, then finds the disk
    full: Keras' model.save as h5py reports it (an OSError without errno), or numpy's savez."""
    import errno

    import numpy as np

    from convzoo import backend, runstate

    keras, real_end, state = backend.load(), runstate.Run.end_epoch, {"epoch": 0}

    def end(self, epoch, logs, seconds):
        state["epoch"] = epoch + 1
        return real_end(self, epoch, logs, seconds)

    def ckpt_full(model, path, *args, **kwargs):
        if state["epoch"] != at_epoch:
            return real_save(model, path, *args, **kwargs)
        open(path, "wb").write(b"\x89HDF\r\n partial")
        raise OSError("Unable to synchronously create file (file write failed: errno = 28, error "
                      "message = 'No space left on device')")

    def state_full(f, *args, **kwargs):
        if state["epoch"] != at_epoch:
            return real_savez(f, *args, **kwargs)
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    real_save, real_savez = keras.Model.save, np.savez
    monkeypatch.setattr(runstate.Run, "end_epoch", end)
    if writer == "checkpoint":
        monkeypatch.setattr(keras.Model, "save", ckpt_full)
    else:
        monkeypatch.setattr(runstate.np, "savez", state_full)


@pytest.mark.parametrize("writer, extra", [("checkpoint", []), ("state", []), ("state", ["--save-best"])])
def test_a_full_disk_keeps_the_previous_checkpoint_and_state_together(runner, tmp_path, monkeypatch,
                                                                       writer, extra):
    import json

    import numpy as np

    from convzoo import checkpoint

    args = ["train", "mnist", "--model", "mlp", "--epochs", "4", "--limit", "300", "--data-dir", SAMPLE,
            "--output", "m.h5", *extra]
    with monkeypatch.context() as m:
        full_disk(m, writer, at_epoch=3)
        res = invoke(runner, *args)
    assert res.exit_code == 1 and "Traceback" not in res.output
    meta = checkpoint.read_meta(tmp_path / "m.h5")
    with np.load(tmp_path / "m_run" / "state.npz") as f:
        assert len(json.loads(str(f["history"]))["epoch"]) == 2
    last = res.output.strip().splitlines()[-1]
    if extra:
        assert meta["epochs_run"] == meta["weights_epoch"] <= 2
        assert (f"Error: no space left saving epoch 3; {tmp_path / 'm.h5'} holds epoch "
                f"{meta['weights_epoch']} (best val_accuracy) and its state epoch 2; free some space") in last
    else:
        assert meta["epochs_run"] == 2
        assert f"Error: no space left saving epoch 3; {tmp_path / 'm.h5'} and its state hold epoch 2; " \
               f"free some space and continue with: convzoo train mnist --model mlp --output " in last
        assert last.endswith("--resume")
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2]
    assert not [f for d in (tmp_path, tmp_path / "m_run") for f in os.listdir(d) if ".tmp" in f]
    args = [a for a in args if a != "--save-best"]
    res = invoke(runner, *args, "--resume")  # space freed: the run goes on from epoch 2
    assert res.exit_code == 0, res.output
    assert "resuming after epoch 2 of 4" in res.output
    assert epochs_in(tmp_path / "m_run" / "history.csv") == [1, 2, 3, 4]


def test_a_full_disk_in_the_first_epoch_says_nothing_was_saved(runner, tmp_path, monkeypatch):
    full_disk(monkeypatch, "checkpoint", at_epoch=1)
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--epochs", "2", "--limit", "300",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1
    assert "no space left saving epoch 1; nothing of this run was saved; free some space and start again" \
        in res.output
    assert not (tmp_path / "m.h5").exists() and not (tmp_path / "m_run" / "state.npz").exists()


# ---------------------------------------------------------------- --resume with a tampered state.npz
@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """One real 1-epoch run of 3 (mlp), stopped: its m.h5 and m_run/ are copied for each test."""
    from convzoo import train

    folder = tmp_path_factory.mktemp("good")
    p = train.plan("mnist", "mlp", output=str(folder / "m.h5"), data_dir=str(SAMPLE), limit=300, epochs=1)
    train.train(p, log=lambda m: None)
    return folder


def state_copy(good_run, tmp_path):
    import json
    import shutil

    import numpy as np

    shutil.copy(good_run / "m.h5", tmp_path / "m.h5")
    shutil.copytree(good_run / "m_run", tmp_path / "m_run")
    with np.load(tmp_path / "m_run" / "state.npz") as f:
        arrays = dict(f)
    plan = json.loads(str(arrays["plan"]))
    plan["recipe"]["epochs"], plan["output"] = 2, str(tmp_path / "m.h5")
    arrays["plan"] = json.dumps(plan)
    return tmp_path / "m_run" / "state.npz", arrays, plan


def replace_plan(arrays, plan, **changes):
    import json

    arrays["plan"] = json.dumps({**plan, **changes})


def declare_size(path, member, size):
    """Set `member`'s uncompressed size in the zip's central directory (what zipfile trusts)."""
    import struct
    import zipfile

    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo(member)
    start = data.index(b"PK\x01\x02" + data[data.index(b"PK\x01\x02") + 4:][:0])  # first central header
    while True:
        name_len = struct.unpack("<H", data[start + 28:start + 30])[0]
        if data[start + 46:start + 46 + name_len] == member.encode():
            break
        extra, comment = struct.unpack("<HH", data[start + 30:start + 34])
        start += 46 + name_len + extra + comment
    assert struct.unpack("<L", data[start + 24:start + 28])[0] == info.file_size
    data[start + 24:start + 28] = struct.pack("<L", size)
    path.write_bytes(bytes(data))


def tamper_object(arrays, plan):
    import numpy as np

    arrays["w0"] = np.array([{"pickled": 1}], dtype=object)


TAMPERED = {  # what is done to state.npz, and the words of the one-line answer
    "garbage": (None, "the file is not an .npz archive"),
    "object array": (tamper_object, "field w0 is an object array (pickled Python objects are refused)"),
    "missing recipe": (lambda a, p: replace_plan(a, {k: v for k, v in p.items() if k != "recipe"}),
                       "field plan has no recipe"),
    "recipe of strings": (lambda a, p: replace_plan(a, p, recipe={**p["recipe"], "batch_size": "32"}),
                          "field plan has recipe batch_size '32', which is not int"),
    "unknown recipe field": (lambda a, p: replace_plan(a, p, recipe={**p["recipe"], "evil": 1}),
                             "field plan has a recipe field 'evil' convzoo does not know"),
    "unknown optimizer": (lambda a, p: replace_plan(a, p, recipe={**p["recipe"], "optimizer": "x"}),
                          "the stored plan is refused (unknown optimizer 'x'"),
    "plan not JSON": (lambda a, p: a.update(plan="{not json"), "field plan is not JSON"),
    "deep JSON": (lambda a, p: a.update(plan="[" * 100_000), "field plan is not JSON"),
    "history damaged": (lambda a, p: a.update(history='{"epoch": [1]}'), "field history does not have the columns"),
    "extra key": (lambda a, p: a.update(evil=__import__("numpy").zeros(3)), "field 'evil' is not a run-state field"),
    "missing weight": (lambda a, p: a.pop("w1"), "field w1 is missing"),
    "extra weight": (lambda a, p: a.update(w99=__import__("numpy").zeros(3)), "field w99 is extra"),
    "wrong shape": (lambda a, p: a.update(w0=a["w0"][:3]), "field w0 has shape (3, 100); the model's needs (784, 100)"),
    "text weights": (lambda a, p: a.update(w0=__import__("numpy").full(a["w0"].shape, "x")),
                     "field w0 holds <U1, not numbers"),
    "plan bomb": ("plan.npy", "field plan declares 3,600,000,000 bytes, more than the"),
    "weights bomb": ("w0.npy", "field w0 declares 3,600,000,000 bytes, more than the 631,296"),
    "flipped byte": ("flip", "field w0 cannot be read (Bad CRC-32 for file 'w0.npy')"),
}


def flip_a_byte(path, member):
    import struct
    import zipfile

    data = bytearray(path.read_bytes())
    start = zipfile.ZipFile(path).getinfo(member).header_offset
    name_len, extra = struct.unpack("<HH", data[start + 26:start + 30])
    data[start + 30 + name_len + extra + 1000] ^= 0xFF  # inside the array's data
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", list(TAMPERED))
def test_resume_with_a_tampered_state_answers_one_line(runner, tmp_path, good_run, case):
    import numpy as np

    state, arrays, plan = state_copy(good_run, tmp_path)
    change, words = TAMPERED[case]
    if change is None:
        state.write_bytes(b"garbage, not a zip")
    else:
        if callable(change):
            change(arrays, plan)
        np.savez(state, **arrays)
        if change == "flip":
            flip_a_byte(state, "w0.npy")
        elif isinstance(change, str):
            declare_size(state, change, 3_600_000_000)
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--resume", "--epochs", "2",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith(f"Error: {state}: ") and words in lines[-1], lines[-1]
    assert "Traceback" not in res.output and not (tmp_path / "m.h5.lock").exists()


def test_resume_of_an_untampered_copy_works(runner, tmp_path, good_run):
    import numpy as np

    state, arrays, plan = state_copy(good_run, tmp_path)
    np.savez(state, **arrays)
    res = invoke(runner, "train", "mnist", "--model", "mlp", "--resume", "--epochs", "2",
                 "--data-dir", SAMPLE, "--output", "m.h5")
    assert res.exit_code == 0 and "resuming after epoch 1 of 2" in res.output, res.output


def test_a_state_bomb_is_refused_under_a_memory_limit(tmp_path, good_run):
    """A w0 that declares 3.6 GB, one that is really 400 MB of zeros (deflated to 400 KB) and says
    so, and a plan whose .npy header declares 2 GB of text: read_state refuses each in a process
    limited to 1 GB of address space, before inflating or allocating it."""
    import subprocess
    import sys
    import zipfile

    import numpy as np

    from conftest import ROOT

    state, arrays, plan = state_copy(good_run, tmp_path)
    np.savez(state, **arrays)
    declare_size(state, "w0.npy", 3_600_000_000)
    honest = tmp_path / "honest.npz"
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in arrays.items():
            if name != "w0":
                with z.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, np.asarray(value))
        with z.open("w0.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (100_000_000,)})
            block = bytes(2**22)
            for _ in range(100):
                f.write(block)
    header = tmp_path / "header.npz"  # plan.npy's header declares 2 GB of text; its data is 8 bytes
    with zipfile.ZipFile(header, "w") as z:
        for name, value in arrays.items():
            with z.open(f"{name}.npy", "w") as f:
                if name == "plan":
                    np.lib.format.write_array_header_1_0(f, {"descr": "<U500000000", "fortran_order": False,
                                                             "shape": ()})
                    f.write(b"{}" + bytes(6))
                else:
                    np.lib.format.write_array(f, np.asarray(value))
    shapes = {k: np.asarray(v).shape for k, v in arrays.items() if k[0] in "wo"}
    code = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))
from convzoo.runstate import StateError, read_state
for path in sys.argv[1:]:
    try:
        read_state(path, {shapes!r})
    except StateError as e:
        print(e)
"""
    res = subprocess.run([sys.executable, "-c", code, str(state), str(honest), str(header)],
                         capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("field w0 declares") == 2, res.stdout
    assert "field plan declares 2,000,000,000 bytes of <U500000000" in res.stdout
