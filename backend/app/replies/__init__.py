"""The reply runtime: running replies, the progress writer, followers, cancellation and
liveness across server processes. It implements the domain's `ReplyHub` port."""

from app.replies.runtime import ReplyRuntime

__all__ = ["ReplyRuntime"]
