"""Where a key of a study file is: YAML line numbers for every key path, and pydantic's
errors turned into one ``file:line: key.path: what was expected`` line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .._util import did_you_mean
from ..errors import ConfigError
from . import schema

# PyYAML's SafeLoader, with libyaml's C scanner and parser where PyYAML was built with it (the
# same safe constructors; about ten times faster on a study file).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _key_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            where = (*path, key)
            out[where] = key_node.start_mark.line + 1
            _key_lines(value_node, where, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _key_lines(item, (*path, i), out)


def format_key(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Located:
    """The raw mapping plus a line for every key path, for error messages."""

    def __init__(self, source: str, lines: dict[tuple[Any, ...], int]) -> None:
        self.source, self.lines = source, lines

    def error(self, path: tuple[Any, ...], message: str) -> ConfigError:
        probe = tuple(path)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return ConfigError(self.source, format_key(path), message, self.lines.get(probe))


def read_yaml(path: Path) -> tuple[Any, Located]:
    source = str(path)
    if not path.exists():
        raise ConfigError(source, "", "file not found")
    if path.is_dir():
        raise ConfigError(source, "", "is a directory, expected a YAML file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(source, "", "not a UTF-8 text file (binary?)") from None
    if "\x00" in text:
        raise ConfigError(source, "", "not a text file (binary: contains NUL bytes)")
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
        data = yaml.load(text, Loader=SAFE_LOADER)  # safe_load, with the C parser where built
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            source, "", f"invalid YAML: {problem}", mark.line + 1 if mark else None
        ) from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    located = Located(source, lines)
    if data is None:
        raise located.error(
            (), "the file is empty; expected a mapping with 'name', 'pairs', 'methods'"
        )
    if not isinstance(data, dict):
        raise located.error((), f"expected a mapping at the top level, got a {type(data).__name__}")
    return data, located


def schema_error(exc: ValidationError, located: Located, data: Any) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(
        p
        for p in err["loc"]
        if not (isinstance(p, str) and p.startswith(("function-", "literal[")))
    )
    kind = err["type"]
    if kind == "extra_forbidden":
        key = loc[-1]
        siblings = _siblings(located, loc[:-1], data)
        hint = did_you_mean(str(key), siblings, n=1)
        return located.error(loc, f"unknown key{hint}")
    if kind == "missing":
        # A misspelt required key arrives as "missing" (pydantic reports it first).
        parent = data
        for part in loc[:-1]:
            if isinstance(parent, dict):
                parent = parent.get(part)
            elif isinstance(parent, list) and isinstance(part, int):
                parent = parent[part]
            else:
                parent = None
        allowed = set(_siblings(located, loc[:-1], data))
        unknown = [k for k in parent or () if k not in allowed]
        close = difflib.get_close_matches(str(loc[-1]), map(str, unknown), n=1)
        found = f"; found {close[0]!r} — a misspelling?" if close else ""
        return located.error(loc, f"required key is missing{found}")
    message = pydantic_message(err)
    if "input" in err and kind not in ("model_type",):
        message += f" (got {err['input']!r})" if not isinstance(err["input"], dict) else ""
    return located.error(loc, message)


def _siblings(located: Located, parent: tuple[Any, ...], data: Any) -> list[str]:
    # The allowed keys at `parent`, found by walking the schema along the path.
    model: Any = schema.StudyConfig
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) or (annotation,):
            inner = getattr(candidate, "__args__", None)
            candidate = inner[0] if inner else candidate
            if hasattr(candidate, "model_fields"):
                model = candidate
                break
        else:
            return []
    return list(getattr(model, "model_fields", {}))


def pydantic_message(err: Any) -> str:
    """A pydantic error's message without the prefix a validator's ValueError gets."""
    return str(err["msg"]).removeprefix("Value error, ")
