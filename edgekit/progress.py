"""Progress on long work (calibration, compilation, emulation), on stderr only.

Progress is for a person watching a terminal, so it is drawn only when stderr is a TTY and
NO_COLOR is unset (and TERM is not "dumb"): piped or captured output, CI logs and `--json`
consumers never see carriage returns or escape codes. `rich` draws it when installed; otherwise
a plain one-line counter does, so the feature needs no dependency.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


def interactive(stream: TextIO | None = None) -> bool:
    """True when progress and colours may be drawn on `stream` (default stderr)."""
    s = stream if stream is not None else sys.stderr
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _rich_console() -> Any | None:
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(stderr=True)


class Progress:
    """A counter `label: done/total` that updates in place; a no-op when not interactive."""

    def __init__(self, label: str, total: int | None, enabled: bool | None = None) -> None:
        self.label, self.total = label, total
        self.enabled = interactive() if enabled is None else enabled
        if total is not None and total <= 1:
            self.enabled = False  # one step has nothing to show
        self.last = 0.0
        self._bar: Any = None
        self._task: Any = None
        if self.enabled:
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
                self._bar.start()
                self._task = self._bar.add_task(label, total=total)

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
        sys.stderr.write(f"\r{self.label}: {done}{of}")
        if final:
            sys.stderr.write("\n")
            self.enabled = False
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self.enabled = False


@contextmanager
def status(label: str, enabled: bool | None = None) -> Iterator[None]:
    """A spinner (rich) or a `label...` line for one step with no count, erased when done."""
    on = interactive() if enabled is None else enabled
    if not on:
        yield
        return
    console = _rich_console()
    if console is not None:
        with console.status(label):
            yield
        return
    sys.stderr.write(f"{label}...")
    sys.stderr.flush()
    try:
        yield
    finally:
        # erase the line so the command's own output starts on a clean line
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
