"""Where a fleet node runs: the address it listens on (which HAProxy's `server` line names) and
the command prefix that starts it there.

The default is this machine's 127.0.0.1 with no prefix, as `make fleet` runs its nodes. The
fleet tests give each node a network namespace of its own (`ip netns exec NAME` as the prefix,
the namespace's address as the host), so the nodes are separate hosts to HAProxy and to the
database. The prefix must exec the command in place: the node's pid and process group stay
those of the process the fleet started, which it signals and kills.
"""

from __future__ import annotations

from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Placement:
    #: The IPv4 address (or name) the node binds and HAProxy sends its requests to.
    host: str = LOOPBACK
    #: Prepended to the node's command line, e.g. ("ip", "netns", "exec", "ns1").
    prefix: tuple[str, ...] = ()


#: On this machine's loopback, started directly (`make fleet`).
LOCAL = Placement()
