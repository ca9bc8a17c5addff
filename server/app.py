"""The aiohttp application: HTTP API, socket.io signaling, pages; and
``serve``, which runs it until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from server.access import AccessPolicy
from server.audit import AuditLog
from server.config import Config
from server.http_api import setup_http_api
from server.pages import setup_pages
from server.recording.catalog import RecordingCatalog
from server.recording.recovery import recover_recordings
from server.recording.retention import run_retention
from server.recording_http import setup_recording_api
from server.session_manager import SessionManager
from server.signaling.namespace import Signaling
from server.store import SessionStore, open_store
from server.tasks import TaskOwner

logger = logging.getLogger(__name__)

#: after the drain, open HTTP/WebSocket connections get this long to finish
SHUTDOWN_GRACE_S = 1.0

SIGNALING_KEY = web.AppKey("signaling", Signaling)
STORE_KEY = web.AppKey("store", SessionStore)


def create_app(config: Config, store: SessionStore, catalog: RecordingCatalog) -> web.Application:
    """Build the app. The store and catalog are owned by the caller;
    everything else the app creates is closed on app cleanup."""
    app = web.Application(client_max_size=config.limits.max_message_bytes)
    policy = AccessPolicy()
    audit = AuditLog.in_dir(config.data_dir)
    signaling = Signaling(
        config, lambda notifier: SessionManager(config, store, catalog, notifier, policy)
    )
    signaling.sio.attach(app)
    app[SIGNALING_KEY] = signaling
    app[STORE_KEY] = store
    setup_http_api(app, config=config, store=store, control=signaling.manager)
    setup_pages(app, config=config, store=store)
    setup_recording_api(app, config=config, catalog=catalog, policy=policy, audit=audit)
    background = TaskOwner("app")

    async def start_background(app: web.Application) -> None:
        # every recording a killed server left is finalized before anything
        # else runs, so retention covers it and nothing appends to it
        await recover_recordings(catalog, config.recordings_dir)
        signaling.manager.start()
        background.spawn(
            run_retention(catalog, config.retention_days, config.retention_interval_s),
            name="retention",
        )

    async def close_sessions(app: web.Application) -> None:
        await signaling.close()
        await background.aclose()
        await audit.close()

    app.on_startup.append(start_background)
    app.on_shutdown.append(close_sessions)
    return app


async def serve(config: Config, *, demo: bool = False) -> int:
    store = await open_store(config)
    catalog = await RecordingCatalog.open(config.data_dir)
    app = create_app(config, store, catalog)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
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
        # drain: refuse new joins, tell live sessions, finalize recordings
        logger.info("draining before shutdown")
        signaling = app[SIGNALING_KEY]
        await signaling.manager.drain()
        # close every socket.io connection ourselves: the pages reconnect to
        # whichever server answers next, and the HTTP server need not wait
        if signaling.sio.eio.sockets:
            await signaling.sio.eio.disconnect()
    finally:
        logger.info("shutting down")
        await runner.cleanup()
        await catalog.close()
        await store.close()
    return 0
