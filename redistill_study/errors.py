"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import re


class UserError(Exception):
    """Bad input: a config, a file, a URL. The message is one complete line."""

    exit_code = 2


class ConfigError(UserError):
    """A study config is wrong; the message names the file, the line and the key."""

    def __init__(self, source: str, key: str, message: str, line: int | None = None) -> None:
        self.source, self.key, self.line, self.detail = source, key, line, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {key or '<top level>'}: {message}")


_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]+):[^@/\s]*@")


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


class StoreUnreachable(Exception):
    """A database or tracking server stayed unreachable past the worker's patience.

    Not the user's input: the worker stops with its own exit code (75, ``EX_TEMPFAIL``) after
    releasing what it can; its trials are retried by any worker once the store is back."""

    exit_code = 75
