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


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_reply_runtime_is_small_modules_with_no_http_and_no_sql_of_its_own() -> None:
    """Its SQL lives in persistence/repositories/replies.py; each job has a module of its own."""
    root = Path(app.domain.__file__).parents[1] / "replies"
    modules = sorted(root.glob("*.py"))
    assert {p.stem for p in modules} >= {
        "runtime",
        "live",
        "writer",
        "followers",
        "cancellation",
        "liveness",
    }
    for path in modules:
        assert len(path.read_text().splitlines()) <= 250, path.name
        imported = _imports(path)
        assert not {i for i in imported if i.split(".")[0] in {"fastapi", "starlette"}}, path
        assert not {i for i in imported if i.startswith("sqlalchemy")}, path


def test_routes_reach_their_objects_typed() -> None:
    """No route module reads loose `app.state` attributes: they get the typed `Services`."""
    api = Path(app.domain.__file__).parents[1] / "api"
    readers = [p.name for p in api.rglob("*.py") if "app.state." in p.read_text()]
    assert readers == ["services.py"]
