"""A relay to the suite's database that can go silent, for what a black-holed route does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import make_url

from devstack.ports import LOOPBACK


class DatabaseRelay:
    """TCP to the database's socket, until `silent`: then bytes either way are dropped, and a
    new connection is taken but never answered. Nothing is refused or reset, as across a
    black-holed route or to a primary gone in a failover."""

    def __init__(self, database_socket: str) -> None:
        self.database_socket = database_socket
        self.silent = False
        self._held: list[asyncio.StreamWriter] = []
        self._serving: set[asyncio.Task[object]] = set()

    async def _pass(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.silent:
                writer.write(data)
        if not self.silent:
            writer.close()  # the end of one side is passed on, as TCP would

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serving = asyncio.current_task()
        assert serving is not None
        self._serving.add(serving)
        self._held.append(writer)
        if self.silent:
            await self._pass(reader, writer)
            return
        upstream_reader, upstream = await asyncio.open_unix_connection(self.database_socket)
        self._held.append(upstream)
        await asyncio.gather(self._pass(reader, upstream), self._pass(upstream_reader, writer))

    @contextmanager
    def silenced(self) -> Iterator[None]:
        self.silent = True
        try:
            yield
        finally:
            self.silent = False

    @classmethod
    @asynccontextmanager
    async def to(cls, database_url: str) -> AsyncIterator[tuple[DatabaseRelay, str]]:
        """A relay to the database of `database_url` (over its unix socket), and the URL of
        the same database through the relay."""
        url = make_url(database_url)
        relay = cls(f"{url.query['host']}/.s.PGSQL.{url.port or 5432}")
        server = await asyncio.start_server(relay._serve, LOOPBACK, 0)
        port = server.sockets[0].getsockname()[1]
        relayed = url.difference_update_query(["host"]).set(host=LOOPBACK, port=port)
        try:
            yield relay, relayed.render_as_string(hide_password=False)
        finally:
            for writer in relay._held:
                writer.close()  # each read then ends, and each connection's task with it
            server.close()
            if relay._serving:
                await asyncio.wait(relay._serving, timeout=5)
