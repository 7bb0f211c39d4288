"""The one exception type the CLI turns into a clean message and exit code 2."""

from __future__ import annotations


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
        return text
