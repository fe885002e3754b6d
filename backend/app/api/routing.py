"""The route class every router uses: two checks every request gets before its dependencies.

- Unknown query parameters are refused (422), as unknown body fields are: a typo such as
  `?limt=5` must not be silently ignored. So is a single-valued parameter given twice
  (`?limit=5&limit=50`): which one wins would be an accident of the framework.
- A body must say it is JSON (`Content-Type: application/json` or `+json`), else 415: a body
  sent as `text/plain` (curl's `-d` without `-H`) would otherwise reach validation as raw bytes
  and be refused with a misleading "Input should be a valid dictionary".
- Where the body is optional (a fork, a regeneration), it is an object or nothing: FastAPI
  would read a JSON `null` as "no body", which the schema does not say (422).

- A path parameter never stands for a word that is a route of its own at that place
  (`/api/sessions/import`): `GET /api/sessions/import` is then the import's path with a verb it
  does not take (405 with `Allow: POST`), not a session whose id is malformed (422).

A route class (FastAPI's extension point for per-route request handling) rather than global
dependencies: what a route reads is worked out once, when the route is built, and the checks
cost a set lookup per request instead of two dependency resolutions.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Union, get_args, get_origin

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

#: Literal path segments of routes that sit where other routes take an id.
LITERAL_SEGMENTS = frozenset({"import"})


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _is_list(annotation: Any) -> bool:
    """`list[str]`, `list[str] | None` and the like: a query parameter that may repeat."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str


def _repeatable_names(dependant: Dependant) -> set[str]:
    names = {
        param.alias for param in dependant.query_params if _is_list(param.field_info.annotation)
    }
    for sub in dependant.dependencies:
        names |= _repeatable_names(sub)
    return names


def _query_errors(
    request: Request, declared: frozenset[str], repeatable: frozenset[str]
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    twice: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            if name in declared and name not in repeatable and name not in twice:
                twice.add(name)
                errors.append(
                    {
                        "type": "value_error",
                        "loc": ("query", name),
                        "msg": "Given more than once; send it once",
                    }
                )
            continue
        seen.add(name)
        if name not in declared:
            errors.append(
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown parameter"}
            )
    return errors


def is_json(content_type: str) -> bool:
    """`application/json` or `application/<anything>+json`, parameters (charset) aside."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = media_type.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _require_json(request: Request) -> None:
    if not await request.body():
        return  # no body: validation says which field is missing
    content_type = request.headers.get("content-type")
    if content_type is None or not is_json(content_type):
        raise HTTPException(
            415,
            detail=f"the body must be JSON, sent with Content-Type: application/json "
            f"(got {content_type[:60] if content_type else 'no Content-Type'})",
            headers={f"Accept-{request.method.title()}": "application/json"},
        )


class StrictQueryRoute(APIRoute):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE and LITERAL_SEGMENTS.intersection(
            child.get("path_params", {}).values()
        ):
            return Match.NONE, {}
        return match, child

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        declared = frozenset(_query_names(self.dependant))
        repeatable = frozenset(_repeatable_names(self.dependant))
        takes_body = self.body_field is not None
        optional_body = self.body_field is not None and not self.body_field.field_info.is_required()

        async def strict(request: Request) -> Response:
            if request.scope["query_string"]:
                errors = _query_errors(request, declared, repeatable)
                if errors:
                    raise RequestValidationError(errors)
            if takes_body:
                await _require_json(request)
            if optional_body and (await request.body()).strip() == b"null":
                raise RequestValidationError(
                    [
                        {
                            "type": "model_attributes_type",
                            "loc": ("body",),
                            "msg": "Input should be an object, or no body at all",
                        }
                    ]
                )
            return await handle(request)

        return strict
