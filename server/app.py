"""The aiohttp application: HTTP API, socket.io signaling, pages; and
``serve``, which runs it until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from server.config import Config
from server.http_api import setup_http_api
from server.sessions import SessionManager
from server.signaling.namespace import Signaling
from server.store import SessionStore, open_store

logger = logging.getLogger(__name__)

SIGNALING_KEY = web.AppKey("signaling", Signaling)
STORE_KEY = web.AppKey("store", SessionStore)


def create_app(config: Config, store: SessionStore) -> web.Application:
    """Build the app. The store is owned by the caller; everything else the
    app creates is closed on app cleanup."""
    app = web.Application(client_max_size=config.limits.max_message_bytes)
    signaling = Signaling(config, lambda notifier: SessionManager(config, store, notifier))
    signaling.sio.attach(app)
    app[SIGNALING_KEY] = signaling
    app[STORE_KEY] = store
    setup_http_api(app, config=config, store=store, control=signaling.manager)

    async def close_sessions(app: web.Application) -> None:
        await signaling.close()

    app.on_shutdown.append(close_sessions)
    return app


async def serve(config: Config, *, demo: bool = False) -> int:
    store = await open_store(config)
    app = create_app(config, store)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    print(f"Sidecoach is listening on {config.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("shutting down")
        await runner.cleanup()
        await store.close()
    return 0
