"""`/docs` and `/openapi.json` describe every endpoint, its errors and its limits."""

from __future__ import annotations

from typing import Any

import httpx


async def test_every_operation_documents_its_errors(client: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            responses = operation["responses"]
            if path.startswith("/api/"):
                for status in ("401", "422", "503"):
                    assert status in responses, f"{method} {path} lacks {status}"
                    content = responses[status]["content"]
                    assert "application/problem+json" in content
                assert operation["security"] == [{"HTTPBearer": []}]
            if "{" in path:
                assert "404" in responses, f"{method} {path} lacks 404"


async def test_limits_are_in_the_schema(client: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    title = components["SessionCreateDTO"]["properties"]["title"]
    assert (title["minLength"], title["maxLength"]) == (1, 500)
    message = components["MessageCreateDTO"]
    assert message["additionalProperties"] is False
    # Null only for an assistant message that calls tools (the `allOf` rules say when).
    text, null = message["properties"]["content"]["anyOf"]
    assert (text["maxLength"], null) == (100_000, {"type": "null"})
    assert message["properties"]["role"]["enum"] == ["user", "assistant", "system", "tool"]
    assert message["properties"]["tokens"]["minimum"] == 0
    params = {p["name"]: p for p in schema["paths"]["/api/sessions/"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 100
    assert params["limit"]["schema"]["default"] == 50
    messages = {p["name"]: p for p in schema["paths"]["/api/messages/"]["get"]["parameters"]}
    assert messages["limit"]["schema"]["default"] == 100


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_branches_and_tools_are_described(client: httpx.AsyncClient) -> None:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    message = components["MessageDTO"]["properties"]
    assert {"parent_id", "tool_calls", "tool_call_id", "finish_reason", "model"} <= set(message)
    assert "cancelled" in str(message["finish_reason"])
    assert "sibling_ids" in components["ThreadMessageDTO"]["properties"]
    assert "current_message_id" in components["SessionDTO"]["properties"]
    update = components["SessionUpdateDTO"]
    assert (update["minProperties"], update.get("required")) == (1, None)
    reply = components["ReplyCreateDTO"]
    assert {"content", "parent_id", "tools", "tool_choice"} == set(reply["properties"])
    assert reply["dependentRequired"] == {"tool_choice": ["tools"]}
    assert reply["properties"]["tools"]["maxItems"] == 128
    arguments = components["FunctionCallIn"]["properties"]["arguments"]
    assert arguments["contentMediaType"] == "application/json"
    paths = schema["paths"]
    replies = paths["/api/sessions/{session_id}/replies"]["post"]
    assert "`tool_call`" in replies["description"]
    assert "parent_id" in replies["description"]
    regenerate = paths["/api/messages/{message_id}/regenerate"]["post"]
    assert "text/event-stream" in regenerate["responses"]["200"]["content"]
    assert {"404", "409"} <= set(regenerate["responses"])
    thread = paths["/api/sessions/{session_id}/thread"]["get"]
    params = {p["name"]: p for p in thread["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 1000
    assert "sibling_ids" in thread["description"]
    fork = paths["/api/sessions/{session_id}/fork"]["post"]
    assert {"201", "404", "409"} <= set(fork["responses"])
    assert "Idempotency-Key" in {p["name"] for p in fork["parameters"]}
