"""Ctrl-C and SIGTERM during training: the first asks the loop to stop at the end of the current
step (the loops call Stop.check after every step), the second stops at once. Before training
starts (Stop.armed false: loading data, building the model) the first one stops at once. Files are written
atomically, so stopping at any point leaves each one whole.

The message is printed at once by a small thread woken through signal.set_wakeup_fd: Python runs
its own signal handlers only between bytecodes, which may be seconds away while TensorFlow runs
a step.
"""
import contextlib
import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what `kill` or a cluster scheduler sends


class Stop:
    """Whether a stop was asked for; check() raises KeyboardInterrupt once it was."""

    def __init__(self):
        self.asked = 0
        self.armed = False  # True once the loop checks: from then on a stop waits for the step

    def check(self):
        if self.asked:
            raise KeyboardInterrupt

    def _handler(self, signum, frame):
        self.asked += 1
        if self.asked > 1 or not self.armed:
            raise KeyboardInterrupt


@contextlib.contextmanager
def graceful(log):
    """Install the handlers for the block (only in the main thread, where Python delivers signals);
    yield the Stop the loops check."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    old = {s: signal.signal(s, stop._handler) for s in SIGNALS}
    watcher = threading.Thread(target=_announce, args=(read, log, stop), daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(old_fd)
        os.close(write)  # the watcher reads end-of-file and ends
        watcher.join(timeout=5)
        os.close(read)


def _announce(fd, log, stop):
    seen = 0
    while True:
        try:
            got = os.read(fd, 16)
        except OSError:
            return
        if not got:
            return
        for signum in got:
            if signum not in SIGNALS:
                continue
            seen += 1
            if not stop.armed:
                return
            if seen == 1:
                log("stopping after the current step... (Ctrl-C again to stop at once)")
            elif seen == 2:
                log("stopping now")


@contextlib.contextmanager
def terminate_as_interrupt():
    """In the block SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so that `finally` clauses run
    (an import removes its staging folder). Yields hold(): from then on both signals are ignored
    until the block ends, so the cleanup (or the final renames) is not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    def hold():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)

    old = {s: signal.getsignal(s) for s in SIGNALS}
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield hold
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
