"""A request body must say it is JSON: `Content-Type: application/json` (or `+json`).

Without this, a body sent as `text/plain` (curl's `-d` without `-H`) reaches validation as raw
bytes and is refused with a misleading "Input should be a valid dictionary"; 415 names the real
mistake. Applied to every route that takes a JSON body, and only when a body was sent.
"""

from __future__ import annotations

import email.message

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute


def is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def require_json_body(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return
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
