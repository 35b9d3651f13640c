"""Ctrl-C and SIGTERM during a real `convzoo train` (a subprocess): the message comes at once, the
run stops after the current step, and the command the message suggests works."""
import csv
import os
import shlex
import signal
import subprocess
import sys

import pytest

from conftest import SAMPLE

HANG = 600  # seconds: a hang timeout, not a timing assertion
# the signals are sent when a line is read; the loop checks after every few steps, and an epoch
# of 50 steps has several checks, so a signal always lands in the epoch it is meant for
TRAIN = ["train", "mnist", "--model", "mlp", "--limit", "1000", "--batch-size", "16", "--epochs", "2",
         "--data-dir", str(SAMPLE), "--output", "runs/m.h5"]


def convzoo(args):
    return [sys.executable, "-m", "convzoo", *args]


def signal_when(args, *plan):
    """Run `convzoo ARGS`; for each (line start, signal) in `plan`, in turn, send the signal as
    soon as a stderr line starts so. Returns (exit code, stderr)."""
    proc = subprocess.Popen(convzoo(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, plan = [], list(plan)
    try:
        for line in proc.stderr:
            lines.append(line)
            if plan and line.startswith(plan[0][0]):
                proc.send_signal(plan.pop(0)[1])
        proc.wait(timeout=HANG)
    finally:
        proc.kill()
    return proc.returncode, "".join(lines)


def suggested(stderr):
    """The command the last line suggests, as arguments for `convzoo`."""
    cmd = shlex.split(stderr.strip().splitlines()[-1].split(" with: ", 1)[1])
    assert cmd[0] == "convzoo"
    return cmd[1:]


def no_temp_files(folder):
    return not [f for f in os.listdir(folder) if ".tmp" in f]


STOPPING = "stopping after the current step..."


@pytest.mark.parametrize("first, later", [(signal.SIGINT, [signal.SIGTERM]),
                                          (signal.SIGTERM, [signal.SIGINT, signal.SIGINT])])
def test_interrupt_in_the_first_then_a_later_epoch_and_the_suggested_commands_work(tmp_path, first, later):
    """The first epoch stopped by one signal, the second by another (or by two: the second stops
    at once); each time the suggested command is run, and the last one completes the run."""
    from convzoo import checkpoint

    code, err = signal_when(TRAIN, ("training mlp", first))
    assert code == 130, err
    assert STOPPING in err
    assert "interrupted before the first epoch ended; nothing was kept; start again with:" in err
    assert not (tmp_path / "runs" / "m_run").exists() and not (tmp_path / "runs" / "m.h5").exists()

    code, err = signal_when(suggested(err), ("epoch 1/2 - ", later[0]), *[(STOPPING, s) for s in later[1:]])
    assert code == 130, err
    if len(later) == 2:  # the second signal stops at once
        assert "stopping now" in err
    assert "holds epoch 1 of 2; continue with:" in err
    assert no_temp_files(tmp_path / "runs") and no_temp_files(tmp_path / "runs" / "m_run")
    checkpoint.load(tmp_path / "runs" / "m.h5")

    res = subprocess.run(convzoo(suggested(err)), capture_output=True, text=True, timeout=HANG)
    assert res.returncode == 0, res.stderr
    assert "resuming after epoch 1 of 2" in res.stderr
    history = tmp_path / "runs" / "m_run" / "history.csv"
    assert [int(r["epoch"]) for r in csv.DictReader(open(history))] == [1, 2]
