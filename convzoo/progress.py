"""Progress on stderr: a Keras-style bar on a terminal, else a plain line at most every INTERVAL
seconds (a log, CI, a pipe). No TensorFlow here: training, evaluate and the data commands share it.

    bar = Progress(len(files), label="checking cifar10 train", unit="images", quiet=quiet)
    for f in files:
        ...
        bar.advance()
    bar.close()
"""
import shutil
import sys
import time

INTERVAL = 15.0  # seconds between lines off a terminal (the issue asks for 10-30 s)
REDRAW = 0.1  # seconds between redraws of the terminal bar
WIDTH = 30  # characters of the bar itself


def duration(seconds):
    """45s, 12m 05s, 2h 07m."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def about(seconds):
    """A rounded estimate: about 40 s, about 24 min, about 2.5 h."""
    return "about " + span(max(seconds, 1))


def span(seconds, minute_digits=0):
    """40 s, 24 min (24.3 min with minute_digits=1), 2.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.{minute_digits}f} min"
    return f"{seconds / 3600:.1f} h"


def rate_unit(unit):
    return {"images": "img/s"}.get(unit, f"{unit}/s")


class Progress:
    """Counts `done` of `total` units; draws a bar on a terminal, else prints a line every INTERVAL s.

    suffix: a callable returning extra text for each draw (training adds the run's ETA). close()
    clears the bar, so the caller's summary line takes its place; off a terminal it prints nothing.
    """

    def __init__(self, total, label="", unit="images", quiet=False, stream=None, tty=None,
                 suffix=None):
        self.total, self.label, self.unit, self.suffix = max(int(total), 0), label, unit, suffix
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = _isatty(self.stream) if tty is None else tty
        self.done = 0
        self.start = self.last = time.monotonic()
        self.drawn = False

    @property
    def rate(self):
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self):
        """Seconds left at the rate so far (None before the first unit)."""
        return (self.total - self.done) / self.rate if self.done and self.rate else None

    def advance(self, n=1):
        self.update(self.done + n)

    def update(self, done):
        self.done = min(int(done), self.total) if self.total else int(done)
        if self.quiet:
            return
        now = time.monotonic()
        if now - self.last < (REDRAW if self.tty else INTERVAL) and self.done < self.total:
            return
        if not self.tty and self.done >= self.total:
            return  # off a terminal the caller's summary line says it is done
        self.last = now
        self._draw()

    def line(self):
        """The text of a non-terminal progress line."""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = self.eta()
        text = (f"{self.label}: {self.done:,}/{self.total:,} {self.unit}{pct}, "
                f"{self.rate:,.0f} {rate_unit(self.unit)}")
        if eta is not None:
            text += f", ETA {duration(eta)}"
        return text + self._suffix(", ")

    def bar(self):
        """The text of the terminal bar, Keras style."""
        frac = self.done / self.total if self.total else 0
        filled = int(WIDTH * frac)
        bar = "=" * filled + (">" if filled < WIDTH else "") + "." * max(WIDTH - filled - 1, 0)
        eta = self.eta()
        text = (f"{self.label} [{bar}] {self.done:,}/{self.total:,} - {self.rate:,.0f} "
                f"{rate_unit(self.unit)}" + (f" - ETA {duration(eta)}" if eta is not None else ""))
        return text + self._suffix(" - ")

    def _suffix(self, sep):
        extra = self.suffix() if self.suffix else None
        return f"{sep}{extra}" if extra else ""

    def _draw(self):
        if self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + self.bar()[: cols - 1].ljust(cols - 1))
            self.drawn = True
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self):
        """Clear the terminal bar (the caller prints its summary line next)."""
        if self.drawn and self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + " " * (cols - 1) + "\r")
            self.stream.flush()
        self.drawn = False


def track(items, total=None, **kwargs):
    """Iterate `items`, advancing a Progress by one per item; the bar is cleared at the end."""
    bar = Progress(len(items) if total is None else total, **kwargs)
    try:
        for item in items:
            yield item
            bar.advance()
    finally:
        bar.close()


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
