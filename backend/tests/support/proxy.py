"""A TCP proxy in front of the test database that a test can cut, black-hole and restore.

It lets a test take "the database" away from the app without stopping the real server, whichever
server TEST_DATABASE_URL (or the embedded default) points at.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from sqlalchemy.engine import make_url

from app.core.database import ConnectParams

Mode = Literal["up", "refuse", "blackhole"]


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        target = ConnectParams.from_url(url)
        if target.host.startswith("/"):
            self._unix: str | None = f"{target.host}/.s.PGSQL.{target.port}"
            self._tcp: tuple[str, int] | None = None
        else:
            self._unix = None
            self._tcp = (target.host, target.port)
        self._url = url
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.mode: Mode = "up"

    @property
    def url(self) -> str:
        url = self._url.set(host="127.0.0.1", port=self.port)
        query = {k: v for k, v in url.query.items() if k not in {"host", "port"}}
        return url.set(query=query).render_as_string(hide_password=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def set_mode(self, mode: Mode) -> None:
        """`refuse`: connections are refused; `blackhole`: accepted, then never answered."""
        self.mode = mode
        if mode != "up":
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
        if mode == "refuse" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "refuse" and self._server is None:
            await self.start()

    async def stop(self) -> None:
        await self.set_mode("refuse")
        for task in list(self._pipes):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode == "blackhole":
            return  # hold the socket open and say nothing
        try:
            if self._unix is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
            else:
                assert self._tcp is not None
                up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()
