"""Running the app: ``serve`` listens (HTTP or HTTPS, an optional
plain-HTTP redirect) until SIGTERM/SIGINT, then ``drain`` finalizes every
recording and closes every connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import NoReturn

from aiohttp import web

from server.app import ACCESS_LOG_CLASS, DEPLOYMENT_KEY, SIGNALING_KEY, create_app, open_store
from server.cluster.redis_conn import preflight
from server.core.config import Config
from server.ops.tls import TlsSetup, load_tls
from server.recording.catalog import RecordingCatalog

logger = logging.getLogger(__name__)

#: after the drain, open HTTP/WebSocket connections get this long to finish
SHUTDOWN_GRACE_S = 1.0
#: on top of the drain deadline and DRAIN_TIMEOUT_S: if the process is still
#: there after all that, something hangs; it exits anyway (``_exit_watchdog``)
SHUTDOWN_SLACK_S = 15.0


def exit_at_once(code: int) -> NoReturn:
    """End the process now that ``serve`` has closed everything it owns
    (recordings finalized and fsync'd, stores closed): logs and output are
    flushed, and the interpreter's own teardown is skipped: on a busy
    machine it was seen to take seconds (C-level finalization of the media
    libraries), and a stopped node must be gone within the drain timeout."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _exit_watchdog(after_s: float) -> None:
    """Exit the process in ``after_s`` seconds if it is still running: a
    stop signal always ends it, whatever hangs (recordings left unfinished
    are recovered at the next start). A thread, so a blocked event loop
    cannot hold it up."""

    def fire() -> None:
        logger.critical(
            "still shutting down %.0f s after the stop signal: exiting now (unfinished"
            " recordings are recovered at the next start)",
            after_s,
        )
        logging.shutdown()
        os._exit(70)

    timer = threading.Timer(after_s, fire)
    timer.daemon = True
    timer.start()


async def serve(config: Config, *, demo: bool = False, reuse_port: bool = False) -> int:
    """Run until SIGTERM/SIGINT, then drain (see ``drain``). ``reuse_port``:
    one of several worker processes sharing the port (``--workers``); each
    also listens on a loopback port of its own, its node URL."""
    private: socket.socket | None = None
    if reuse_port and not config.node_url:
        private = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        private.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        private.bind(("127.0.0.1", 0))
        config = replace(config, node_url=f"http://127.0.0.1:{private.getsockname()[1]}")
    if config.redis_url:  # a refused password or certificate stops us here, clearly
        await preflight(config.redis_url, config.secret, config.redis_tls_ca)
    store = await open_store(config)
    catalog = await RecordingCatalog.open(config.data_dir)
    tls = await asyncio.get_running_loop().run_in_executor(None, load_tls, config)
    app = create_app(config, store, catalog)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=ACCESS_LOG_CLASS,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    await runner.setup()
    runners = [runner]
    site = web.TCPSite(
        runner,
        config.host,
        config.port,
        ssl_context=tls.context if tls else None,
        reuse_port=reuse_port or None,
    )
    await site.start()
    sites: list[web.BaseSite] = [site]
    if private is not None:
        sites.append(web.SockSite(runner, private))
        await sites[-1].start()
    if tls is not None:
        _announce_tls(tls)
    if config.http_redirect_port is not None:
        redirect = web.AppRunner(https_redirect_app(config), handle_signals=False)
        await redirect.setup()
        runners.append(redirect)
        sites.append(
            web.TCPSite(
                redirect, config.host, config.http_redirect_port, reuse_port=reuse_port or None
            )
        )
        await sites[-1].start()
        print(f"Plain HTTP on port {config.http_redirect_port} redirects to HTTPS", flush=True)
    print(f"Sidecoach is listening on {config.base_url}", flush=True)
    stop = StopSignals(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.on_signal)

    async def stop_listening() -> None:
        for one in sites:
            await one.stop()
        for r in runners:  # kept-alive connections take no further request
            if r.server is not None:
                r.server.pre_shutdown()

    try:
        await stop.first.wait()
        await drain(app, config.drain_deadline_s, stop.second, stop_listening)
    finally:
        logger.info("shutting down")
        for r in reversed(runners):
            await r.cleanup()
        await catalog.close()
        await store.close()
        if stop.at is not None:
            logger.info("stopped %.2f s after the stop signal", time.monotonic() - stop.at)
    return 0


class StopSignals:
    """SIGTERM/SIGINT: the first drains, a second exits at once; either way
    the process is gone within the drain deadline, DRAIN_TIMEOUT_S and
    SHUTDOWN_SLACK_S (``_exit_watchdog``)."""

    def __init__(self, config: Config) -> None:
        self.first, self.second = asyncio.Event(), asyncio.Event()
        #: monotonic time of the first signal
        self.at: float | None = None
        self._deadline_s = config.drain_deadline_s
        self._finishing_s = config.limits.drain_timeout_s + SHUTDOWN_SLACK_S

    def on_signal(self) -> None:
        if self.first.is_set():
            logger.warning("second stop signal: finalizing recordings and exiting now")
            self.second.set()
            _exit_watchdog(self._finishing_s)
        else:
            self.at = time.monotonic()
            _exit_watchdog(self._deadline_s + self._finishing_s)
        self.first.set()


async def drain(
    app: web.Application,
    deadline_s: float,
    now: asyncio.Event,
    stop_listening: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """No new sessions here (``/readyz`` says so; other nodes take them);
    wait until nobody is in a session here any more, at most ``deadline_s``
    (or until ``now`` is set); then tell the pages, finalize every
    recording, stop listening (``stop_listening``: no connection arrives
    that the shutdown would wait for) and close every connection (pages
    reconnect to whichever node answers; their sessions move there,
    recordings as further parts). Nothing here waits on a client: closing
    a connection cuts it after ``SOCKET_CLOSE_GRACE_S``."""
    signaling = app[SIGNALING_KEY]
    manager = signaling.manager
    manager.stop_new_sessions()
    app[DEPLOYMENT_KEY].begin_drain()

    def busy() -> int:
        return sum(len(s.participants) for s in manager.sessions.values())

    if deadline_s > 0 and busy():
        logger.info(
            "draining: waiting for %d participants in %d sessions to leave (at most %.0f s;"
            " stop again to exit now)",
            busy(),
            len(manager.sessions),
            deadline_s,
        )
        end = time.monotonic() + deadline_s
        while busy() and not now.is_set() and time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(now.wait(), min(1.0, max(0.0, end - time.monotonic())))
    logger.info("draining before shutdown")
    await manager.drain()
    if stop_listening is not None:
        await stop_listening()
    # close every socket.io connection ourselves: the pages reconnect to
    # whichever server answers next, and the HTTP server need not wait
    await signaling.sio.close_all()


def _announce_tls(tls: TlsSetup) -> None:
    if tls.self_signed:
        # printed, not only logged: the person starting it compares this
        # with what the teacher's browser shows before accepting it
        print(
            "HTTPS with a SELF-SIGNED certificate, NOT for production (browsers will warn;"
            f" check the fingerprint before accepting it): {tls.cert_path}\n"
            f"  SHA-256 fingerprint {tls.fingerprint}",
            flush=True,
        )
        logger.warning("serving a self-signed certificate: NOT for production")
    else:
        logger.info("HTTPS with %s (SHA-256 %s)", tls.cert_path, tls.fingerprint)


def https_redirect_app(config: Config) -> web.Application:
    """Answers every plain-HTTP request with a redirect to the same path on
    HTTPS: the public URL's origin if set, else the requested host name on
    the HTTPS port."""
    app = web.Application()

    async def redirect(request: web.Request) -> web.StreamResponse:
        if config.public_url:
            origin = config.base_url
        else:
            host = request.url.host or "localhost"
            if ":" in host:
                host = f"[{host}]"
            origin = f"https://{host}" + ("" if config.port == 443 else f":{config.port}")
        raise web.HTTPPermanentRedirect(origin + request.rel_url.path_qs)

    app.router.add_route("*", "/{tail:.*}", redirect)
    return app
