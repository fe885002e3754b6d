"""Where this process is in its life, for the readiness check: serving, or draining (asked to
stop: the load balancer must take it out of rotation while it finishes what it has)."""

from __future__ import annotations


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
