"""One reply's write failure must never stall the others.

A model can emit text the database refuses: a lone surrogate ("\\ud800", which a JSON string
escape decodes to in Python) cannot be encoded to UTF-8. Several replies run at once; one of
them gets such a chunk from the (local, OpenAI-compatible) model. The others must complete
normally, and the bad one must end too (`failed`, or `completed` without the character): it
must not stay `streaming`, nor be retried forever.

Today (issue #7) the bad value fails the batched progress statement of every running reply, and
the batched final save retries forever: the test fails after BOUND_S, then the server's shutdown
gives up on the unsaved replies after its final-save wait (about 10 s). It never hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.replies.conftest import Serve
from tests.support.fake_llm import FakeChatServer, Script, settings_for
from tests.support.replies import get_message, new_session, reply_stream
from tests.support.sse import collect

Auth = Callable[[str], dict[str, str]]

LONE_SURROGATE = "\ud800"
GOOD = [f" g{i}" for i in range(40)]
#: How long every reply gets to end: each streams for about 2 s.
BOUND_S = 10.0


async def _start(
    http: httpx.AsyncClient, llm: FakeChatServer, prompt: str, alice: dict[str, str]
) -> tuple[int, int]:
    """Start a reply in a new session, leave its stream, and wait until the model was asked
    (so the order in which the model server hands out its scripts is known)."""
    asked = len(llm.requests)
    sid = await new_session(http, alice)
    async with reply_stream(http, sid, prompt, alice) as response:
        started = await asyncio.wait_for(collect(response, limit=2), 10)
    for _ in range(500):
        if len(llm.requests) > asked:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the model was never asked")
    reply_id: int = started[1].data["id"]
    return sid, reply_id


async def _ended(
    http: httpx.AsyncClient, reply_id: int, alice: dict[str, str], deadline: float
) -> Any:
    """Poll the stored message until it leaves `streaming`, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    while True:
        message = await get_message(http, reply_id, alice)
        if message["status"] != "streaming":
            return message
        if loop.time() > deadline:
            raise AssertionError(f"message {reply_id} still streaming after {BOUND_S} s")
        await asyncio.sleep(0.05)


async def test_one_replys_unstorable_output_never_stalls_the_others(
    serve: Serve, llm: FakeChatServer, auth: Auth
) -> None:
    llm.default = Script(chunks=GOOD, delay_s=0.05)
    server = await serve(**settings_for(llm))
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        good = [(await _start(http, llm, f"good {i}", alice))[1] for i in range(4)]
        # The next model call (and only it) answers with a chunk PostgreSQL cannot store.
        llm.scripts.append(Script(chunks=[" bad", LONE_SURROGATE, *GOOD[:20]], delay_s=0.05))
        bad_session, bad = await _start(http, llm, "bad", alice)
        assert not llm.scripts, "the bad script went to the bad prompt"
        assert llm.requests[-1].body["messages"][-1]["content"] == "bad"

        # Bounded waits, all at once: with the defect present this fails after BOUND_S.
        deadline = asyncio.get_running_loop().time() + BOUND_S
        finals = await asyncio.wait_for(
            asyncio.gather(*(_ended(http, reply_id, alice, deadline) for reply_id in [*good, bad])),
            BOUND_S + 10,
        )
        for final in finals[:-1]:
            assert (final["status"], final["content"]) == ("completed", "".join(GOOD))
        bad_final = finals[-1]
        assert bad_final["status"] in {"failed", "completed"}
        assert LONE_SURROGATE not in bad_final["content"]

        # Nothing is left retrying in the background: the same session takes a new reply.
        async with reply_stream(http, bad_session, "again", alice) as response:
            again = await asyncio.wait_for(collect(response), BOUND_S)
        assert (again[-1].event, again[-1].data["status"]) == ("done", "completed")
