"""Running the server: bind, serve until SIGTERM or SIGINT, then drain.

On the first SIGTERM (or Ctrl-C) the listening socket closes (new connections are refused), idle
keep-alive connections are closed, requests already being handled run to the end (up to
`drain_timeout` seconds), the model workers stop, and the process exits 0. The `Server` class runs the
same thing on a background thread (tests, notebooks); `serve` runs it in the foreground.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from sensorium.apps.serve.app import create_app
from sensorium.apps.serve.http import STATE, AccessLogger, access_log
from sensorium.apps.serve.inputs import Limits
from sensorium.runtime.errors import SensoriumError

log = logging.getLogger("sensorium.serve")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Server:
    """`models` served on host:port (port 0: any free port; `url` says which) until `stop()`."""

    def __init__(self, models: Sequence[Any], *, host: str = "127.0.0.1", port: int = 8080,
                 limits: Limits | None = None, cors_origins: Sequence[str] = (), drain_timeout: float = 30.0) -> None:
        self.app = create_app(models, limits, cors_origins)
        self.host, self.port = host, port
        self.drain_timeout = drain_timeout
        self._runner: web.AppRunner | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start answering (SensoriumError, one line, when the address cannot be used)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._runner = web.AppRunner(self.app, access_log_class=AccessLogger, access_log=access_log,
                                     handle_signals=False, shutdown_timeout=self.drain_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=self.drain_timeout)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise SensoriumError(f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); choose another "
                                 "--port or --host") from None
        if self._runner.addresses:  # the bound port, when 0 was asked
            self.port = int(self._runner.addresses[0][1])

    async def wait_and_drain(self) -> None:
        """Serve until `stop()`, then drain in-flight requests and stop the model workers."""
        assert self._stop is not None and self._runner is not None
        await self._stop.wait()
        state = self.app[STATE]
        state.draining = True
        log.info("draining: %d request(s) in flight (waiting up to %gs)", state.in_flight, self.drain_timeout)
        await self._runner.cleanup()  # closes the listener, lets handlers finish, then runs on_cleanup
        log.info("stopped")

    def stop(self) -> None:
        """Begin the drain (safe from any thread and from a signal handler)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    # --- on a background thread -----------------------------------------------------------------
    def start_in_thread(self, timeout: float = 60.0) -> Server:
        """Run on a daemon thread; returns once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            try:
                await self.start()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            await self.wait_and_drain()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="sensorium-serve", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the server did not start")
        if failure:
            raise failure[0]
        return self

    def stop_thread(self, timeout: float = 60.0) -> None:
        """Drain and wait for the background thread to end."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)


def serve(models: Sequence[Any], *, host: str, port: int, limits: Limits, cors_origins: Sequence[str] = (),
          drain_timeout: float = 30.0) -> int:
    """Serve in the foreground until SIGTERM / SIGINT, then drain; returns the exit code (0)."""
    server = Server(models, host=host, port=port, limits=limits, cors_origins=cors_origins,
                    drain_timeout=drain_timeout)

    async def main() -> None:
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                loop.add_signal_handler(sig, _on_signal, server, sig)
        names = ", ".join(f"{m.name} ({m.task})" for m in models)
        log.info("serving %s on %s/ (the demo page; the API is at %s/v1/models/NAME)", names, server.url, server.url)
        if host not in LOOPBACK:
            log.warning("listening on %s: reachable from other machines, with no authentication", host)
        await server.wait_and_drain()

    asyncio.run(main())
    return 0


def _on_signal(server: Server, sig: signal.Signals) -> None:
    if server.app[STATE].draining:  # a second signal: stop waiting for the drain
        log.warning("%s received again: exiting without waiting for %d request(s)", sig.name,
                    server.app[STATE].in_flight)
        os._exit(1)
    log.info("%s received", sig.name)
    server.stop()
