"""Progress of a long command: a bar in a terminal, nothing in a pipe or a log."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """``with Progress(total, "import") as p: p.advance(n)``."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty()

    def advance(self, count: int = 1) -> None:
        """``count`` more units done."""
        self.update(self.done + count, self.total)

    def update(self, done: int, total: int) -> None:
        """``done`` units of ``total`` (which may grow once the work is known)."""
        self.done, self.total = done, max(total, 1)
        if self.shown:
            width = 30
            filled = int(width * min(self.done, self.total) / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total}")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
