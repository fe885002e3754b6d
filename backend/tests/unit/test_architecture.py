"""The arrows only point down: the domain imports neither FastAPI nor SQLAlchemy."""

from __future__ import annotations

import ast
from pathlib import Path

import app.domain

FORBIDDEN = ("fastapi", "starlette", "sqlalchemy", "asyncpg", "app.api", "app.persistence")


def test_domain_imports_no_framework_or_database_code() -> None:
    root = Path(app.domain.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)
            ]
    assert offenders == []
    assert len(list(root.rglob("*.py"))) >= 8  # the walk really looked at the domain
