"""A relay to the suite's database that can go silent, for what a black-holed route does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import make_url

from devstack.ports import LOOPBACK


class DatabaseRelay:
    """TCP to the database's socket, until `silent`: then nothing is refused, reset or
    answered, as across a black-holed route. Bytes either way wait for the route to come back,
    and are delivered then, as TCP's retransmissions deliver them: a statement a client gave
    up on may still run, and a client's goodbye ends its server session only then."""

    def __init__(self, database_socket: str) -> None:
        self.database_socket = database_socket
        self._route_up = asyncio.Event()
        self._route_up.set()
        self._held: list[asyncio.StreamWriter] = []
        self._serving: set[asyncio.Task[object]] = set()

    @property
    def silent(self) -> bool:
        return not self._route_up.is_set()

    @silent.setter
    def silent(self, silent: bool) -> None:
        if silent:
            self._route_up.clear()
        else:
            self._route_up.set()

    async def _pass(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._route_up.wait()
                writer.write(data)
                await writer.drain()
            await self._route_up.wait()
        except ConnectionError:
            pass  # the far end is gone; this side goes too, as TCP's reset would take it
        finally:
            writer.close()  # the end of one side is passed on, as TCP would

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serving = asyncio.current_task()
        assert serving is not None
        self._serving.add(serving)
        self._held.append(writer)
        await self._route_up.wait()  # a new connection's handshake waits for the route too
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
