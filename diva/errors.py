"""One error style for every command: a one-line `error: ...` on stderr that names the bad value
and what would be accepted, exit status 2 for bad input, and nothing written.

    raise UnknownName("assistant", "cascade-mnii", ASSISTANTS)
    # unknown assistant 'cascade-mnii'; did you mean cascade-mini? known: text-mini, cascade-mini, ...
"""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import Iterable

BAD_INPUT = 2      # the user asked for something that does not exist or cannot be read
UNAVAILABLE = 3    # it exists, but cannot run here (not trained yet, needs a GPU, ...)


class UsageError(ValueError):
    """Bad input from the command line or a config file, said in one line."""


class UnknownName(UsageError, KeyError):
    """A name that is not among the known ones (a KeyError too, for callers that look names up)."""

    def __init__(self, kind: str, name: str, known: Iterable[str], extra: str = ""):
        super().__init__(unknown(kind, name, known, extra))

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def suggestion(name: str, known: Iterable[str]) -> str:
    """'did you mean a or b?' for the closest known names, or ''."""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f"did you mean {' or '.join(close)}?" if close else ""


def unknown(kind: str, name: str, known: Iterable[str], extra: str = "") -> str:
    """"unknown KIND 'NAME'; did you mean ...? known: a, b, c" (+ `extra`, e.g. ", or a folder")."""
    known = list(known)
    hint = suggestion(name, known)
    return f"unknown {kind} {name!r}; {hint + ' ' if hint else ''}known: {', '.join(known)}{extra}"


def unknown_key(key: str, known: Iterable[str], where: str = "") -> str:
    """A config key: "unknown key train.'stpes'; did you mean steps?" (the known keys when none is close)."""
    known = list(known)
    return f"unknown key {where}{key!r}; {suggestion(key, known) or 'known: ' + ', '.join(known)}"


def fail(error: object, status: int = BAD_INPUT) -> int:
    """Print `error: ...` on stderr (one line) and return the exit status."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return status


class ArgumentParser(argparse.ArgumentParser):
    """argparse in the same style: a bad option is one `error: ...` line and exit status 2."""

    def error(self, message: str):
        self.exit(BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")
