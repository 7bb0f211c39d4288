"""Progress on long work (calibration, compilation, emulation), on stderr only.

Progress is for a person watching a terminal, so it is drawn only when stderr is a TTY and
NO_COLOR is unset (and TERM is not "dumb"): piped or captured output, CI logs and `--json`
consumers never see carriage returns or escape codes. `rich` draws it when installed; otherwise
a plain one-line counter does, so a broken or missing rich never stops a command.
The same rule decides colours (`paint`): a person at a terminal gets them, nobody else does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

# SGR codes of the few styles the CLI uses; names say what they mean, not what they look like
STYLES = {"error": "1;31", "ok": "1;32", "bad": "1;31", "warn": "33", "dim": "2"}


def interactive(stream: TextIO | None = None) -> bool:
    """True when progress and colours may be drawn on `stream` (default stderr)."""
    s = stream if stream is not None else sys.stderr
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def paint(text: str, style: str, stream: TextIO | None = None) -> str:
    """`text` in the colour of `style` when `stream` (default stdout) is an interactive terminal;
    unchanged otherwise, so pipes, files, CI logs and NO_COLOR users get plain text."""
    if not interactive(stream if stream is not None else sys.stdout):
        return text
    return f"\033[{STYLES[style]}m{text}\033[0m"


# one bar or spinner at a time: rich refuses a second live display, and a plain counter inside
# a spinner would garble its line, so whatever starts while one is showing stays silent
_showing = False


def _rich_console() -> Any | None:
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(stderr=True)


class Progress:
    """A bar (rich) or a counter `label: done/total unit` that updates in place on stderr.

    A no-op when stderr is not interactive, unless `enabled` forces it on; a forced counter on
    a stream that is not a terminal is drawn as plain text, never with rich's escape codes.
    """

    def __init__(
        self, label: str, total: int | None, enabled: bool | None = None, unit: str = ""
    ) -> None:
        global _showing
        self.label, self.total, self.unit = label, total, unit
        self.enabled = interactive() if enabled is None else enabled
        if _showing:
            self.enabled = False  # inside another bar or spinner
        if total is not None and total <= 1:
            self.enabled = False  # one step has nothing to show
        self.last = 0.0
        self._bar: Any = None
        self._task: Any = None
        if self.enabled and interactive():
            console = _rich_console()
            if console is not None:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    TextColumn,
                    TimeElapsedColumn,
                )
                from rich.progress import Progress as RichProgress

                self._bar = RichProgress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                    transient=True,
                )
                _showing = True
                self._bar.start()
                self._task = self._bar.add_task(f"{label} ({unit})" if unit else label,
                                                total=total)

    def update(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        final = final or (self.total is not None and done >= self.total)
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            if final:
                self.close()
            return
        now = time.monotonic()
        if now - self.last < 0.1 and not final:
            return
        self.last = now
        of = f"/{self.total}" if self.total else ""
        unit = f" {self.unit}" if self.unit else ""
        sys.stderr.write(f"\r{self.label}: {done}{of}{unit}")
        if final:
            sys.stderr.write("\n")
            self.enabled = False
        sys.stderr.flush()

    def close(self) -> None:
        """Take the bar off the terminal; safe to call twice, and after the last update."""
        global _showing
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            _showing = False
        elif self.enabled:
            sys.stderr.write("\n")  # a plain counter interrupted before its last step
            sys.stderr.flush()
        self.enabled = False


@contextmanager
def status(label: str, enabled: bool | None = None) -> Iterator[None]:
    """A spinner (rich) or a `label...` line for one step with no count, erased when done."""
    global _showing
    on = interactive() if enabled is None else enabled
    if not on or _showing:
        yield
        return
    console = _rich_console() if interactive() else None
    if console is not None:
        _showing = True
        try:
            with console.status(label):
                yield
        finally:
            _showing = False
        return
    sys.stderr.write(f"{label}...")
    sys.stderr.flush()
    _showing = True
    try:
        yield
    finally:
        _showing = False
        # erase the line so the command's own output starts on a clean line
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def track(items: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """Iterate over `items` with a progress bar labelled `label` (see `Progress`)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = Progress(label, total)
    done = 0
    try:
        for item in items:
            yield item
            done += 1
            bar.update(done)
    finally:
        bar.close()
