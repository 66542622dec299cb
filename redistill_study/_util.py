"""Small helpers every layer may use: atomic writes, file locks, "did you mean", the first line
of an error, config-relative paths. Nothing here imports the rest of the package."""

from __future__ import annotations

import contextlib
import difflib
import fcntl
from collections.abc import Iterable, Iterator
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on one machine (a lock file, ``flock``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """``"; did you mean 'kd'?"`` for the closest known names, or ``""``."""
    close = difflib.get_close_matches(str(name), list(known), n=n)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def unknown_name(name: str, known: list[str], what: str) -> str:
    """``unknown method 'kdd'; did you mean 'kd'? (known: ce, kd)``."""
    return f"unknown {what} {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})"


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_path(value: str, base_dir: Path) -> Path:
    """Paths in a config are relative to the config file's folder; ``~`` expands."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base_dir / p).resolve()
