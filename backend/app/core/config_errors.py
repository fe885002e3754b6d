"""Invalid configuration as a person reads it: one line per bad variable, then exit status 2.

Pydantic's `ValidationError` holds everything needed (the field, the value given, what is
accepted), but printed as a traceback it is fifteen lines of noise around one mistake. Values of
secret settings are masked: a configuration error must not leak the secret it is about.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn, TextIO

from pydantic import ValidationError

from app.core.settings import Settings, get_settings

#: Exit status for a configuration error (as `sysexits`' EX_USAGE family and argparse use).
CONFIG_EXIT = 2

#: Settings whose values are never printed.
SECRET_MARKERS = ("SECRET", "TOKEN", "KEY", "PASSWORD")


def _shown(name: str, value: Any) -> str:
    if any(marker in name for marker in SECRET_MARKERS):
        length = len(value) if isinstance(value, str) else 0
        return f"<secret, {length} characters>"
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:80] + ("…" if len(text) > 80 else ""))


def describe(exc: ValidationError) -> list[str]:
    """One line per problem: `NAME=value: what is accepted`."""
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = error.get("loc") or ()
        if not loc:  # a rule across several settings (production safety checks)
            lines.append(message)
            continue
        name = str(loc[0]).upper()
        lines.append(f"{name}={_shown(name, error.get('input'))}: {message}")
    return lines


def exit_on_invalid(exc: ValidationError, stream: TextIO | None = None) -> NoReturn:
    out = stream or sys.stderr
    print("agent-stack: invalid configuration (environment or .env):", file=out)
    for line in describe(exc):
        print(f"  {line}", file=out)
    raise SystemExit(CONFIG_EXIT)


def load_settings() -> Settings:
    """The process's settings, or a short report and exit status 2 if they are invalid."""
    try:
        return get_settings()
    except ValidationError as exc:
        exit_on_invalid(exc)
