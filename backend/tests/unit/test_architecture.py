"""The arrows only point down: the domain imports neither FastAPI nor SQLAlchemy."""

from __future__ import annotations

import ast
import inspect
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


def test_no_route_or_dependency_runs_in_the_thread_pool() -> None:
    """FastAPI runs a plain `def` endpoint or dependency in a worker thread: a thread hop per
    request that measured as a large share of a reply start's CPU. Every one is `async def`."""
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute, iter_route_contexts

    from app.core.settings import Settings
    from app.main import create_app

    settings = Settings(_env_file=None, database_url="postgresql://nobody@127.0.0.1:9/none")
    app = create_app(settings)
    routes = [
        context.route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.route, APIRoute)
    ]

    def is_async(call: object) -> bool:
        method = call if inspect.isfunction(call) else getattr(call, "__call__", None)  # noqa: B004
        return inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)

    def sync_calls(dependant: Dependant) -> list[str]:
        found = []
        if dependant.call is not None and not is_async(dependant.call):
            found.append(getattr(dependant.call, "__qualname__", repr(dependant.call)))
        for sub in dependant.dependencies:
            found += sync_calls(sub)
        return found

    offenders = {route.path: sync_calls(route.dependant) for route in routes}
    assert {path: calls for path, calls in offenders.items() if calls} == {}
    assert len(routes) >= 10
