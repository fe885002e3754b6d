"""What the model is sent: the reply policy (system prompt, context budget) and the prompt built
from a branch of the conversation, in the order and pairing Chat Completions servers accept."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.language_model import PromptMessage


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """What goes into a prompt: an optional system prompt, then the newest messages of the
    branch that fit."""

    system_prompt: str | None = None
    context_chars: int = 32_000
    context_messages: int = 50


def _size(message: PromptMessage) -> int:
    calls = sum(len(c.function.name) + len(c.function.arguments) for c in message.tool_calls)
    return len(message.content) + calls


def _groups(newest_first: Sequence[PromptMessage]) -> list[list[PromptMessage]]:
    """The messages in the units a prompt takes or leaves: tool results together with the
    assistant message that called them (one is useless without the other); any other message
    alone."""
    groups: list[list[PromptMessage]] = []
    i = 0
    while i < len(newest_first):
        group = [newest_first[i]]
        i += 1
        if group[0].role == "tool":
            while i < len(newest_first) and newest_first[i].role == "tool":
                group.append(newest_first[i])
                i += 1
            if i < len(newest_first) and newest_first[i].tool_calls:
                group.append(newest_first[i])
                i += 1
        groups.append(group)
    return groups


def _answerable(chronological: Sequence[PromptMessage]) -> list[PromptMessage]:
    """What Chat Completions servers accept: each assistant message's calls directly followed by
    their results. A result goes with the nearest earlier assistant message holding its call (as
    it was validated); a result without a call in the prompt, or without a `tool_call_id` (old
    clients), is left out, and so is a call without a result (the model would be refused)."""
    slots: list[tuple[PromptMessage, list[PromptMessage]]] = []
    for message in chronological:
        if message.role != "tool":
            slots.append((message, []))
            continue
        for holder, answers in reversed(slots):
            if any(call.id == message.tool_call_id for call in holder.tool_calls):
                if all(answer.tool_call_id != message.tool_call_id for answer in answers):
                    answers.append(message)
                break
    prompt: list[PromptMessage] = []
    for message, answers in slots:
        if not message.tool_calls:
            prompt.append(message)
            continue
        by_call = {answer.tool_call_id: answer for answer in answers}
        calls = tuple(call for call in message.tool_calls if call.id in by_call)
        if calls or message.content:
            prompt.append(dataclasses.replace(message, tool_calls=calls))
            prompt.extend(by_call[call.id] for call in calls)
    return prompt


def build_prompt(
    policy: ReplyPolicy, newest_first: Sequence[PromptMessage], prompt: str | None
) -> list[PromptMessage]:
    """The new user message (if any) always; then the branch, newest first, while the budget
    lasts (the newest part always, when there is no new message); then sent in chronological
    order, with tool calls and their results paired as the model requires."""
    picked: list[PromptMessage] = []
    used_messages = used_chars = 0
    if prompt is not None:
        picked.append(PromptMessage("user", prompt))
        used_messages, used_chars = 1, len(prompt)
    for group in _groups(newest_first):
        size = sum(_size(message) for message in group)
        if picked and (
            used_messages + len(group) > policy.context_messages
            or used_chars + size > policy.context_chars
        ):
            break
        picked.extend(group)
        used_messages += len(group)
        used_chars += size
    picked.reverse()
    messages = _answerable(picked)
    if policy.system_prompt:
        messages.insert(0, PromptMessage("system", policy.system_prompt))
    return messages


#: Characters per token of OpenAI's rule of thumb for English text.
CHARS_PER_TOKEN = 4


def estimated_tokens(messages: Sequence[PromptMessage]) -> int:
    """The prompt's input tokens when the provider reports none (a stream closed before its
    usage report: a cancel, a failure, a deletion): one per `CHARS_PER_TOKEN` characters. The
    usage ledger counts this rather than nothing, or cancelling every reply just before its end
    would keep its prompt out of the daily limit."""
    return math.ceil(sum(_size(message) for message in messages) / CHARS_PER_TOKEN)
