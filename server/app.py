"""The aiohttp application: HTTP API, socket.io signaling, pages; and
``serve``, which runs it until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web

from server.access_log import RedactingAccessLogger
from server.config import Config
from server.http_api import setup_http_api
from server.metrics import Metrics, setup_metrics
from server.pages import setup_pages
from server.recording.catalog import RecordingCatalog
from server.recording.finalize import recover
from server.recording.manifest import read_manifest
from server.recording.retention import run_retention
from server.recording_http import setup_recording_api
from server.sessions import SessionManager
from server.signaling.namespace import Signaling
from server.store import SessionStore, open_store
from server.tasks import TaskOwner

logger = logging.getLogger(__name__)

SIGNALING_KEY = web.AppKey("signaling", Signaling)
STORE_KEY = web.AppKey("store", SessionStore)
METRICS_KEY = web.AppKey("metrics", Metrics)
#: pass to ``web.AppRunner`` (or aiohttp's TestServer): access log lines
#: without invite or admin tokens
ACCESS_LOG_CLASS = RedactingAccessLogger


@web.middleware
async def _nosniff(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every response: browsers must not guess a content type (a recording
    or a JSON body is never run as a script or page)."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        exc.headers.setdefault("X-Content-Type-Options", "nosniff")
        raise
    if not response.prepared:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def create_app(config: Config, store: SessionStore, catalog: RecordingCatalog) -> web.Application:
    """Build the app. The store and catalog are owned by the caller;
    everything else the app creates is closed on app cleanup."""
    app = web.Application(client_max_size=config.limits.max_message_bytes, middlewares=[_nosniff])
    metrics = Metrics()
    signaling = Signaling(
        config, lambda notifier: SessionManager(config, store, catalog, notifier), metrics
    )
    signaling.sio.attach(app)
    app[SIGNALING_KEY] = signaling
    app[STORE_KEY] = store
    app[METRICS_KEY] = metrics
    setup_metrics(app, metrics)
    setup_http_api(app, config=config, store=store, control=signaling.manager, metrics=metrics)
    setup_pages(app, config=config, store=store)

    setup_recording_api(app, config=config, catalog=catalog)
    background = TaskOwner("app")

    async def start_background(app: web.Application) -> None:
        background.spawn(
            run_retention(catalog, config.retention_days, config.retention_interval_s),
            name="retention",
        )

    async def close_sessions(app: web.Application) -> None:
        await signaling.close()
        await background.aclose()

    app.on_startup.append(start_background)
    app.on_shutdown.append(close_sessions)
    return app


async def serve(config: Config, *, demo: bool = False) -> int:
    store = await open_store(config)
    catalog = await RecordingCatalog.open(config.data_dir)
    recovered = await asyncio.get_running_loop().run_in_executor(
        None, recover, config.recordings_dir
    )
    for directory in recovered:
        manifest = read_manifest(directory)
        await catalog.add(directory.name, directory.parent.name, directory, manifest["started_at"])
        await catalog.finish(directory.name, manifest)
        print(f"Recovered unfinished recording {directory}", flush=True)
    app = create_app(config, store, catalog)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=ACCESS_LOG_CLASS)
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
        await catalog.close()
        await store.close()
    return 0
