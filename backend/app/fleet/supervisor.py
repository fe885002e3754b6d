"""`agent-stack fleet` runs the fleet in the foreground until Ctrl-C or SIGTERM, and listens on
a control socket in its run directory; `agent-stack fleet-restart` asks it there for a rolling
restart and prints its progress until it is done."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from app.fleet.fleet import FleetOptions, running_fleet

CONTROL_SOCKET = "control.sock"
RESTART = b"restart\n"
DONE = "done"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def supervise(
    options: FleetOptions, database_url: str, stop: asyncio.Event | None = None
) -> None:
    """Start the fleet, serve restart requests, stop everything when `stop` is set (default:
    at the first SIGINT or SIGTERM)."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    control = options.run_dir / CONTROL_SOCKET
    restarting = asyncio.Lock()
    async with running_fleet(options, database_url) as fleet:

        async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            def report(line: str) -> None:
                say(line)
                writer.write(f"{line}\n".encode())

            try:
                if await reader.readline() == RESTART:
                    async with restarting:
                        await fleet.rolling_restart(report)
                    writer.write(f"{DONE}\n".encode())
                await writer.drain()
            finally:
                writer.close()

        control.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(serve_client, path=str(control))
        say(
            f"fleet: HAProxy on {options.url} in front of {options.nodes} node(s) on ports "
            f"{options.node_port(1)}..{options.node_port(options.nodes)}; logs and HAProxy's "
            f"configuration in {options.run_dir}; `make fleet-restart` restarts them in turn; "
            "Ctrl-C stops them"
        )
        try:
            await stop.wait()
            say("fleet: stopping (the nodes drain first)")
        finally:
            server.close()
            control.unlink(missing_ok=True)


async def request_restart(run_dir: Path) -> bool:
    """Ask the running fleet for a rolling restart; print its progress. False if none runs."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(run_dir / CONTROL_SOCKET))
    except OSError:
        say(f"no fleet is running from {run_dir} (start one with `make fleet`)")
        return False
    finished = False
    try:
        writer.write(RESTART)
        await writer.drain()
        while line := (await reader.readline()).decode().strip():
            finished = line == DONE
            if not finished:
                say(line)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return finished
