"""Progress output: a tqdm bar over the study's trials, with one line per finished trial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm


class Progress:
    def __init__(
        self, total: int, done: int, desc: str, quiet: bool, echo: Callable[[str], None] = print
    ) -> None:
        self.quiet, self.echo = quiet, echo
        self._bar: Any = None
        if not quiet:
            self._bar = tqdm(
                total=total,
                initial=done,
                unit="trial",
                dynamic_ncols=True,
                desc=desc,
                leave=False,
            )

    def say(self, line: str, done: int = 0) -> None:
        """Print ``line`` above the bar; ``done`` trials finished with it."""
        if self._bar is not None and done:
            self._bar.update(done)
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(line)
        else:
            self.echo(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
