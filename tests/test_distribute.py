"""convzoo train --distribute: mirrored over two logical CPUs, and two local multi-worker processes.

Training runs in subprocesses: the logical CPUs and the cluster must be set up before TensorFlow
starts, once per process.
"""
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import SAMPLE, interrupt_after_epoch, invoke

TIMEOUT = 300  # a hang guard per training run; each takes 10-40 s on 2 cores, minutes when they are shared
TRAIN = ["train", "mnist", "--epochs", "1", "--limit", "256", "--batch-size", "64", "--data-dir", str(SAMPLE)]


def convzoo(*args):
    return [sys.executable, "-m", "convzoo", *[str(a) for a in args]]


def env(**extra):
    out = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    out.update(extra)
    return out


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_workers(args, n=2):
    """`convzoo ARGS` as the n workers of a local cluster; (returncode, stdout, stderr) per worker."""
    hosts = [f"127.0.0.1:{p}" for p in free_ports(n)]
    procs = [subprocess.Popen(convzoo(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env(TF_CONFIG=json.dumps({"cluster": {"worker": hosts},
                                                            "task": {"type": "worker", "index": i}})))
             for i in range(n)]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            results.append((proc.returncode, out, err))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        errs = [proc.communicate()[1] for proc in procs]
        pytest.fail(f"workers still running after {TIMEOUT}s; their stderr:\n" +
                    "\n".join(f"--- worker {i}\n{e[-2000:]}" for i, e in enumerate(errs)))
    return results


def predicts(path):
    from convzoo import checkpoint
    from convzoo.data import mnist

    model, meta = checkpoint.load(path)
    x, y = mnist.load(SAMPLE / "mnist", "test")
    probs = np.asarray(model.predict(x[:20], verbose=0))
    assert probs.shape == (20, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    return meta


def test_mirrored_over_two_logical_cpus(tmp_path):
    res = subprocess.run(convzoo(*TRAIN, "--model", "mnist-cnn", "--distribute", "mirrored",
                                 "--output", "tmp/x.h5"),
                         capture_output=True, text=True, timeout=TIMEOUT, env=env())
    assert res.returncode == 0, res.stderr
    assert "mirrored: 2 replicas (CPU:0, CPU:1); global batch 64" in res.stderr
    meta = predicts(tmp_path / "tmp" / "x.h5")
    assert meta["distribute"] == {"strategy": "mirrored", "replicas": 2, "workers": 1,
                                  "devices": ["CPU:0", "CPU:1"]}
    assert meta["epochs_run"] == 1 and meta["train_images"] + meta["val_images"] == 256
    cfg = json.loads((tmp_path / "tmp" / "x_run" / "config.json").read_text())
    assert cfg["distribute"]["replicas"] == 2


def test_s1_with_class_weights_under_mirrored(tmp_path):
    """S1's hand-written recipe (its own NumPy batch order, as datasets) and --class-weight, both
    once refused under --distribute, train on the one loop over two replicas."""
    res = subprocess.run(convzoo("train", "fashion_mnist", "--model", "fashion-cnn-scratch", "--epochs", "1",
                                 "--limit", "256", "--batch-size", "64", "--data-dir", SAMPLE,
                                 "--distribute", "mirrored", "--class-weight", "balanced", "--output", "s1.h5"),
                         capture_output=True, text=True, timeout=TIMEOUT, env=env(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "mirrored: 2 replicas" in res.stderr and "class weights (balanced): " in res.stderr
    from convzoo import checkpoint

    meta = checkpoint.read_meta(tmp_path / "s1.h5")
    assert meta["distribute"]["replicas"] == 2 and meta["class_weight"] == "balanced"
    assert meta["recipe"]["loop"] == "tape" and meta["epochs_run"] == 1


def test_two_workers_the_chief_writes_the_checkpoint(tmp_path):
    (chief, worker) = run_workers([*TRAIN, "--model", "mnist-cnn", "--distribute", "multiworker",
                                   "--output", "tmp/x.h5"])
    assert chief[0] == 0, chief[2]
    assert worker[0] == 0, worker[2]
    assert "saved" in chief[1] and "worker done" in worker[1]
    assert "multiworker: 2 replicas (2 workers)" in chief[2]
    assert sorted(os.listdir(tmp_path / "tmp")) == ["x.h5", "x_run"]  # workertemp_1 removed
    meta = predicts(tmp_path / "tmp" / "x.h5")
    assert meta["distribute"] == {"strategy": "multiworker", "replicas": 2, "workers": 2}
    assert meta["history"]["epoch"] == [1]
    # both workers computed the same (all-reduced) epoch
    assert chief[2].split("epoch 1/1 - ")[1].split(" - ")[:4] == worker[2].split("epoch 1/1 - ")[1].split(" - ")[:4]


def test_workers_resume_from_the_chiefs_epoch(runner, tmp_path, monkeypatch):
    """A run stopped between the chief's save and a worker's: every worker continues from the
    chief's epoch. The stopped run here is a one-device run, so resuming also switches strategy."""
    from convzoo import checkpoint

    interrupt_after_epoch(monkeypatch, 1)
    args = ["train", "mnist", "--model", "mlp", "--limit", "600", "--data-dir", SAMPLE, "--output", "r/x.h5"]
    assert invoke(runner, *args, "--epochs", "3").exit_code == 130
    # worker 1's copy of the run state, one epoch behind
    shutil.copytree(tmp_path / "r" / "x_run", tmp_path / "r" / "workertemp_1" / "x_run")
    state = tmp_path / "r" / "workertemp_1" / "x_run" / "state.npz"
    with np.load(state) as f:
        arrays = dict(f)
    arrays["history"] = json.dumps({k: v[:1] for k, v in json.loads(str(arrays["history"])).items()})
    np.savez(state, **arrays)

    (chief, worker) = run_workers([*args, "--distribute", "multiworker", "--resume"])
    assert chief[0] == 0 and worker[0] == 0, chief[2] + worker[2]
    assert "resuming after epoch 2 of 3" in chief[2]
    assert "this worker held epoch 1, the chief epoch 2: continuing from the chief's" in worker[2]
    meta = checkpoint.read_meta(tmp_path / "r" / "x.h5")
    assert meta["history"]["epoch"] == [1, 2, 3] and meta["distribute"]["workers"] == 2
    assert not (tmp_path / "r" / "workertemp_1").exists()


def test_early_stop_under_mirrored(runner, tmp_path):
    """A warm start with a learning rate too small to change a weight: validation loss cannot
    improve after the first epoch, so --early-stop 1 stops at epoch 2 under --distribute too."""
    from convzoo import checkpoint

    args = ["train", "mnist", "--model", "mlp", "--limit", "256", "--data-dir", SAMPLE]
    assert invoke(runner, *args, "--epochs", "2", "--output", "a.h5").exit_code == 0
    res = subprocess.run(convzoo(*args, "--epochs", "5", "--weights", "a.h5", "--learning-rate", "1e-30",
                                 "--early-stop", "1", "--distribute", "mirrored", "--output", "b.h5"),
                         capture_output=True, text=True, timeout=TIMEOUT, env=env())
    assert res.returncode == 0, res.stderr
    meta = checkpoint.read_meta(tmp_path / "b.h5")
    assert meta["stopped_early"] == 2 and meta["weights_epoch"] == 1 and meta["epochs_run"] == 2
    assert "stopped early at epoch 2 of 5; weights from epoch 1 (best val_loss)" in res.stdout


def tf_config(cluster, kind="worker", index=0):
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


@pytest.mark.parametrize("value, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {}}', 'needs a "cluster" and a "task" object'),
    (tf_config({"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]}), "has 'ps' tasks"),
    (tf_config({"worker": ["127.0.0.1"]}), 'must be a list of "host:port" strings'),
    (tf_config({"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, index=2), "task index 2 is not 0-1"),
    (tf_config({"worker": ["127.0.0.1:1"]}, kind="chief"), "task type 'chief' is not in its cluster"),
])
def test_missing_or_malformed_tf_config_is_one_line(runner, monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    res = invoke(runner, *TRAIN, "--distribute", "multiworker", "--output", "m.h5")
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_refusals_before_training(runner):
    res = invoke(runner, *TRAIN, "--devices", "2", "--output", "m.h5")
    assert res.exit_code == 1 and "--devices applies to --distribute mirrored only" in res.output
    res = invoke(runner, "train", "--help")
    assert "--distribute [mirrored|multiworker]" in res.output and "global batch" in res.output


def test_chief_and_worker_copy_paths(monkeypatch, tmp_path):
    from convzoo import distributed

    hosts = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    monkeypatch.setenv("TF_CONFIG", tf_config(hosts, "chief", 0))
    assert distributed.parse_tf_config("multiworker") == ("chief", 0, 3, True)
    monkeypatch.setenv("TF_CONFIG", tf_config(hosts, "worker", 0))
    task = distributed.parse_tf_config("multiworker")
    assert not task.chief  # with a chief task, worker 0 is not the chief
    assert distributed.worker_copy(tmp_path / "runs" / "m.h5", task) == \
        str(tmp_path / "runs" / "workertemp_0" / "m.h5")
    assert distributed.parse_tf_config(None) is None and distributed.parse_tf_config("mirrored", 4) is None
