"""The route class every router uses: unknown query parameters are refused, as unknown body
fields are. A typo such as `?limt=5` must not be silently ignored.

A route class (FastAPI's extension point for per-route request handling) rather than a global
dependency: the parameters a route reads are worked out once, when the route is built, and the
check costs a set lookup per request instead of a dependency resolution."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class StrictQueryRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        declared = frozenset(_query_names(self.dependant))

        async def strict(request: Request) -> Response:
            unknown = [name for name in request.query_params if name not in declared]
            if unknown:
                raise RequestValidationError(
                    [
                        {
                            "type": "extra_forbidden",
                            "loc": ("query", name),
                            "msg": "Unknown parameter",
                        }
                        for name in unknown
                    ]
                )
            return await handle(request)

        return strict
