"""A cuttable TCP link on loopback: a tiny forwarding proxy run in a thread.

Used by `simpul demo` and the acceptance tests to partition two nodes for real.

Pointing a node at ``link.url`` instead of its peer lets a test partition the
network for real: ``cut()`` drops every open connection and refuses new ones,
``heal()`` lets traffic through again. ``delay_s`` holds every chunk that
long in each direction (a round trip of twice that), to stand in for a slow
wide-area link. Only 127.0.0.1 is ever used.
"""
from __future__ import annotations

import asyncio
import socket
import threading


class TcpLink:
    def __init__(self, target_port: int, delay_s: float = 0.0):
        self.target_port = target_port
        self.delay_s = delay_s
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _pipe(self, reader, writer) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()   # (when due, chunk); None ends the direction

        async def deliver():
            while (item := await queue.get()) is not None:
                due, data = item
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if not self.up:  # in flight while the link was cut: dropped, as the wire would
                    return
                writer.write(data)
                await writer.drain()
        delivering = asyncio.ensure_future(deliver())
        try:
            while self.up and (data := await reader.read(65536)):
                if not self.up:  # read while the link was being cut: dropped, as the wire would
                    break
                queue.put_nowait((loop.time() + self.delay_s, data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)
            await asyncio.gather(delivering, return_exceptions=True)
            writer.close()

    async def _serve(self, reader, writer) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        """Refuse new connections and drop the open ones; returns once they are dropped."""
        self.up = False

        async def drop():
            for w in list(self._writers):
                w.transport.abort()
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(drop(), self._loop).result(5)

    def heal(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
