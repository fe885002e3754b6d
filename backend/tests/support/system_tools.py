"""Tests that need a program from the distribution's packages (HAProxy, PostgreSQL's server).

`make test` on a machine without it skips them, saying what to install; CI installs them first
and sets REQUIRE_SYSTEM_TOOLS=1, so that a missing program fails the run instead of hiding a
whole scenario behind a green result.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str) -> NoReturn:
    if os.environ.get("REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(f"{what} (REQUIRE_SYSTEM_TOOLS=1: CI must have installed it)")
    pytest.skip(what)
