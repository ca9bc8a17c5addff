"""Running the app: ``serve`` listens (HTTP or HTTPS, an optional
plain-HTTP redirect) until SIGTERM/SIGINT, then ``drain`` finalizes every
recording and closes every connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from dataclasses import replace

from aiohttp import web

from server.app import ACCESS_LOG_CLASS, DEPLOYMENT_KEY, SIGNALING_KEY, create_app, open_store
from server.core.config import Config
from server.ops.tls import TlsSetup, load_tls
from server.recording.catalog import RecordingCatalog

logger = logging.getLogger(__name__)

#: after the drain, open HTTP/WebSocket connections get this long to finish
SHUTDOWN_GRACE_S = 1.0


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
    store = await open_store(config)
    catalog = RecordingCatalog(store.db)
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
    if private is not None:
        await web.SockSite(runner, private).start()
    if tls is not None:
        _announce_tls(tls)
    if config.http_redirect_port is not None:
        redirect = web.AppRunner(https_redirect_app(config), handle_signals=False)
        await redirect.setup()
        runners.append(redirect)
        await web.TCPSite(
            redirect, config.host, config.http_redirect_port, reuse_port=reuse_port or None
        ).start()
        print(f"Plain HTTP on port {config.http_redirect_port} redirects to HTTPS", flush=True)
    print(f"Sidecoach is listening on {config.base_url}", flush=True)
    stop, now = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            logger.warning("second stop signal: finalizing recordings and exiting now")
            now.set()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stop.wait()
        await drain(app, config.drain_deadline_s, now)
    finally:
        logger.info("shutting down")
        for r in reversed(runners):
            await r.cleanup()
        await catalog.close()
        await store.close()
    return 0


async def drain(app: web.Application, deadline_s: float, now: asyncio.Event) -> None:
    """No new sessions here (``/readyz`` says so; other nodes take them);
    wait until nobody is in a session here any more, at most ``deadline_s``
    (or until ``now`` is set); then tell the pages, finalize every
    recording and close every connection (pages reconnect to whichever
    node answers; their sessions move there, recordings as further parts)."""
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
