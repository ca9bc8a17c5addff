"""The aiohttp application: HTTP API, socket.io signaling, pages; and
``serve``, which runs it until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.access.audit import AuditLog
from server.access.policy import AccessPolicy
from server.cluster.control import DeploymentControl
from server.cluster.forward import PollingForwarder
from server.cluster.node import ClusterNode, sid_tag
from server.cluster.recordings import RecordingsAcrossNodes
from server.cluster.redis_store import RedisSessionStore
from server.core.config import Config, node_id_of
from server.core.tasks import TaskOwner
from server.http.admin import setup_http_api
from server.http.pages import setup_pages
from server.http.recordings import RecordingAccess, setup_recording_api
from server.http.review import ReviewApi, setup_review_api
from server.live.manager import SessionManager
from server.ops.access_log import RedactingAccessLogger
from server.ops.metrics import Metrics, setup_metrics
from server.ops.node_metrics import NodeCollector, watch_loop_lag
from server.ops.readiness import setup_readiness
from server.ops.tls import TlsSetup, load_tls
from server.recording.catalog import RecordingCatalog
from server.recording.clips import ClipMaker
from server.recording.comments import CommentStore
from server.recording.recovery import recover_recordings
from server.recording.retention import run_retention
from server.signaling.namespace import Signaling
from server.storage.sessions import SessionStore, open_store

logger = logging.getLogger(__name__)

#: after the drain, open HTTP/WebSocket connections get this long to finish
SHUTDOWN_GRACE_S = 1.0

SIGNALING_KEY = web.AppKey("signaling", Signaling)
STORE_KEY = web.AppKey("store", SessionStore)
METRICS_KEY = web.AppKey("metrics", Metrics)
#: only in a deployment of several nodes (a Redis URL)
CLUSTER_KEY = web.AppKey("cluster", ClusterNode)
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


@web.middleware
async def _socketio_sees_tls(request: web.Request, handler: Handler) -> web.StreamResponse:
    """engineio's aiohttp driver takes the scheme only from X-Forwarded-Proto
    (else "http"), so its same-origin check would refuse every https page
    when Sidecoach serves TLS itself: tell it the connection's real scheme."""
    if (
        request.secure
        and request.path.startswith("/socket.io/")
        and "X-Forwarded-Proto" not in request.headers
    ):
        headers = request.headers.copy()
        headers["X-Forwarded-Proto"] = "https"
        request = request.clone(headers=headers)
    return await handler(request)


def create_app(config: Config, store: SessionStore, catalog: RecordingCatalog) -> web.Application:
    """Build the app. The store and catalog are owned by the caller;
    everything else the app creates is closed on app cleanup."""
    app = web.Application(
        client_max_size=config.limits.max_message_bytes,
        middlewares=[_nosniff, _socketio_sees_tls],
    )
    policy = AccessPolicy()
    audit = AuditLog.in_dir(config.data_dir)
    metrics = Metrics()
    nodes: list[ClusterNode] = []  # this node in a deployment (with a Redis URL)

    def make_manager(edge: Signaling) -> SessionManager:
        if config.redis_url:
            shared = store.redis if isinstance(store, RedisSessionStore) else None
            nodes.append(ClusterNode(config, edge.sio, catalog, shared))
        deployment = nodes[0] if nodes else None
        return SessionManager(config, store, catalog, edge, policy, deployment=deployment)

    signaling = Signaling(
        config,
        make_manager,
        metrics,
        sid_prefix=sid_tag(node_id_of(config)) if config.redis_url else "",
    )
    signaling.sio.attach(app)
    app[SIGNALING_KEY] = signaling
    app[STORE_KEY] = store
    app[METRICS_KEY] = metrics
    setup_metrics(app, metrics)
    manager = signaling.manager
    cluster = nodes[0] if nodes else None
    control: DeploymentControl | SessionManager = manager
    if cluster is not None:
        cluster.manager = manager
        signaling.placement = cluster
        cluster.setup_routes(app)
        control = DeploymentControl(manager, cluster)
        app[CLUSTER_KEY] = cluster
        forwarder = PollingForwarder(cluster.tag, cluster.url_of_tag)
        app.middlewares.append(forwarder.middleware)
        if config.store == "redis":  # several boxes: each serves the recordings on its disk
            across = RecordingsAcrossNodes(catalog, cluster.other_urls)
            app.middlewares.append(across.middleware)
    setup_readiness(
        app,
        [
            lambda: [] if manager.accepting else ["draining"],
            *([cluster.not_ready] if cluster else []),
        ],
        lambda: {"sessions": len(manager.sessions), **(cluster.describe() if cluster else {})},
    )
    setup_http_api(app, config=config, store=store, control=control, metrics=metrics)

    def more_metrics() -> Iterator[Metric]:
        draining = int(not manager.accepting)
        yield GaugeMetricFamily("sidecoach_draining", "1: no new sessions here", draining)
        if cluster is not None:
            yield from cluster.metrics()
            yield CounterMetricFamily(
                "sidecoach_longpoll_forwarded",
                "long-polling requests forwarded to the node holding their socket",
                value=forwarder.forwarded,
            )

    metrics.registry.register(NodeCollector(lambda: list(manager.sessions.values()), more_metrics))
    setup_pages(app, config=config, store=store)
    access = RecordingAccess(config, catalog, policy, audit, store)
    comments = CommentStore.in_dir(config.data_dir)
    clips = ClipMaker()
    review = ReviewApi(
        access, store, comments, clips, on_comment=signaling.manager.comment_added
    )
    setup_recording_api(app, access, on_delete=comments.delete_recording)
    setup_review_api(app, review)
    background = TaskOwner("app")

    async def start_background(app: web.Application) -> None:
        await comments.start()
        # every recording a killed server left is finalized before anything
        # else runs, so retention covers it and nothing appends to it
        await recover_recordings(
            catalog, config.recordings_dir, cluster.node_id if cluster is not None else ""
        )
        signaling.manager.start()
        background.spawn(watch_loop_lag(metrics.loop_lag.observe), name="event-loop lag")
        if cluster is not None:
            await cluster.start(config.node_url or f"http://127.0.0.1:{config.port}")
        background.spawn(
            run_retention(
                catalog,
                config.retention_days,
                config.retention_interval_s,
                on_deleted=comments.delete_recording,
            ),
            name="retention",
        )

    async def close_sessions(app: web.Application) -> None:
        if cluster is not None:
            await cluster.stop()
            await forwarder.close()
            if config.store == "redis":
                await across.close()
        await signaling.close()
        await background.aclose()
        await clips.close()
        await comments.close()
        await audit.close()

    app.on_startup.append(start_background)
    app.on_shutdown.append(close_sessions)
    return app


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
    if CLUSTER_KEY in app:
        app[CLUSTER_KEY].begin_drain()

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
