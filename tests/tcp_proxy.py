"""A TCP proxy between a client and a real server, to make the server stop answering on demand.

`black_hole()` keeps connections open but swallows what the client sends (a server that hangs);
`restore()` drops the swallowed connections, so the client reconnects, and forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._swallowing = False
        self._connections: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        # Set once something the client sent was swallowed: its call is in flight and will get no answer.
        self.swallowed = asyncio.Event()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def black_hole(self) -> None:
        self.swallowed.clear()
        self._swallowing = True

    def restore(self) -> None:
        self._swallowing = False
        self._drop_connections()

    def _drop_connections(self) -> None:
        for writer in list(self._connections):
            writer.close()
        self._connections.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._connections |= {writer, upstream_writer}
        await asyncio.gather(self._pump(reader, upstream_writer), self._pump(upstream_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if self._swallowing:
                    self.swallowed.set()
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()


@asynccontextmanager
async def proxied(target: str) -> AsyncIterator[TcpProxy]:
    """A proxy to `target` ("host:port") for the block."""
    host, _, port = target.rpartition(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
