"""Unknown query parameters are refused, as unknown body fields are."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

_DECLARED_QUERY: dict[str, frozenset[str]] = {}


def _declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameters a route reads, its dependencies' included: worked out once per
    route (keyed by its operation id; APIRoute is not hashable), not once per request."""
    names = _DECLARED_QUERY.get(route.unique_id)
    if names is None:
        names = _DECLARED_QUERY[route.unique_id] = frozenset(_query_names(route.dependant))
    return names


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """A typo such as `?limt=5` must not be silently ignored."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    declared = _declared_query(route)
    unknown = [name for name in request.query_params if name not in declared]
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown parameter"}
                for name in unknown
            ]
        )
