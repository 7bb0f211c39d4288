"""The one exception type the CLI turns into a clean message and exit code 2."""

from __future__ import annotations

import re

# Names inside model files reach messages; terminal control sequences in them must not reach
# the user's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class EdgekitError(Exception):
    """A user-facing error: what went wrong, where, and what to do about it."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.where:
            parts.append(f"{self.where}: ")
        parts.append(self.what)
        text = "".join(parts)
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return _printable(text)
