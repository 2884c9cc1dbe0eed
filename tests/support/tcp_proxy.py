"""A TCP proxy on 127.0.0.1 for fault tests: the app reaches PostgreSQL through it, and the test
cuts it to play a database restart without touching the machine's server (other tests use it).

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/name"
        ... start the app on url ...
        proxy.cut()      # every open connection reset, new ones refused (the port is closed)
        proxy.restore()  # listening again on the same port; connections pass through again

What the app sees during a cut is what a restart shows it: open connections fail ("server
closed the connection unexpectedly", "connection reset") and new ones are refused. PostgreSQL
sees each of its connections end, so their transactions roll back and their session advisory
locks are released, as in a restart. The proxy runs an asyncio loop on a daemon thread; every
method is safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpProxy:
    """Forward ``host:port`` (a free port unless given) to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.accepted = 0  # connections accepted since start, for tests
        self.cuts = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._open: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close(reset=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def cut(self) -> int:
        """Stop listening (new connections are refused) and reset every open connection, on
        both sides. Returns how many connections were cut."""
        self.cuts += 1
        return self._call(self._close(reset=True))

    def restore(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._open) // 2

    # ------------------------------------------------------------------ the loop's side

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self, *, reset: bool) -> int:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # the listening socket: a connect is now refused
        writers = list(self._open)
        self._open.clear()
        for writer in writers:
            if reset:
                writer.transport.abort()  # RST, no orderly FIN: what a killed server leaves
            else:
                writer.close()
        return len(writers) // 2

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, upstream_writer)
        self._open.update(pair)
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer),
                self._pipe(upstream_reader, client_writer),
            )
        finally:
            for writer in pair:
                self._open.discard(writer)
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer`` until either side ends; then end the other direction."""
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
