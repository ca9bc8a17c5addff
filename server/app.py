"""The composition root: the one place that chooses the deployment (one
node, or several on Redis), the session store, and wires the layers
together into one aiohttp application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric

from server.access.policy import AccessPolicy
from server.cluster.deployment import ClusterDeployment
from server.cluster.redis_store import RedisSessionStore
from server.core.config import Config
from server.core.tasks import TaskOwner
from server.http.admin import setup_http_api
from server.http.errors import error_middleware
from server.http.home import setup_home
from server.http.login import PEOPLE_KEY, login_middleware
from server.http.measures import setup_measures_api
from server.http.middleware import nosniff, socketio_sees_tls
from server.http.pages import Renderer, setup_pages
from server.http.people_admin import setup_people_admin
from server.http.person_access import PersonAccess
from server.http.recordings import RecordingAccess, setup_recording_api
from server.http.review import ReviewApi, setup_review_api
from server.http.signin import setup_signin
from server.http.whip import setup_whip
from server.live.deployment import Deployment, LocalDeployment
from server.live.manager import SessionManager
from server.ops.access_log import RedactingAccessLogger
from server.ops.metrics import Metrics, setup_metrics
from server.ops.node_metrics import NodeCollector, watch_loop_lag
from server.ops.readiness import setup_readiness
from server.people.service import People
from server.recording.catalog import RecordingCatalog
from server.recording.clips import ClipMaker
from server.recording.comments import CommentStore
from server.recording.measure_runs import MeasureRuns
from server.recording.recovery import recover_recordings
from server.recording.retention import run_retention
from server.signaling.edge import Signaling
from server.storage.audit import AuditLog
from server.storage.legacy import open_database
from server.storage.lessons import SqlSessionStore
from server.storage.sessions import SessionStore

logger = logging.getLogger(__name__)

SIGNALING_KEY = web.AppKey("signaling", Signaling)
STORE_KEY = web.AppKey("store", SessionStore)
METRICS_KEY = web.AppKey("metrics", Metrics)
DEPLOYMENT_KEY = web.AppKey("deployment", Deployment)
#: pass to ``web.AppRunner`` (or aiohttp's TestServer): access log lines
#: without invite or admin tokens
ACCESS_LOG_CLASS = RedactingAccessLogger


async def open_store(config: Config) -> SqlSessionStore:
    """The session store on the one database (SQLite in ``config.data_dir``,
    or the PostgreSQL of ``SIDECOACH_DATABASE_URL`` that several boxes
    share), migrated; closing the store closes the database."""
    db = await open_database(Path(config.data_dir), config.database_url)
    store = SqlSessionStore(db, owns_db=True)
    if config.store == "redis" and config.redis_url:
        await _copy_redis_sessions(config, store)
    return store


async def _copy_redis_sessions(config: Config, store: SqlSessionStore) -> None:
    """``SIDECOACH_STORE=redis`` is retired: copy what Redis holds into the
    database (sessions already there stay as they are)."""
    assert config.redis_url is not None
    redis = await RedisSessionStore.open(
        config.redis_url, Path(config.data_dir), config.secret, tls_ca=config.redis_tls_ca
    )
    try:
        added = await store.import_records(await redis.list())
    finally:
        await redis.close()
    logger.warning(
        "SIDECOACH_STORE=redis is retired: sessions live in the database now "
        "(%d copied from Redis); drop the setting",
        added,
    )


def choose_deployment(config: Config, catalog: RecordingCatalog) -> Deployment:
    """One node, or a deployment of several when a Redis URL is set."""
    if config.redis_url:
        return ClusterDeployment(config, catalog, None)
    return LocalDeployment()


def _socket_metrics(signaling: Signaling) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "sidecoach_signaling_sockets_unauthenticated",
        "sockets admitted that have not joined (counted until their transport is gone)",
        signaling.unauthenticated,
    )
    yield GaugeMetricFamily(
        "sidecoach_signaling_websockets",
        "websockets open now (one the server closed, until it is cut)",
        signaling.sio.transport_count,
    )


def create_app(
    config: Config, store: SqlSessionStore, catalog: RecordingCatalog
) -> web.Application:
    """Build the app. The store and catalog are owned by the caller;
    everything else the app creates is closed when the app stops."""
    app = web.Application(
        client_max_size=config.limits.max_message_bytes,
    )
    policy = AccessPolicy()
    db = store.db
    audit = AuditLog(db)
    metrics = Metrics()
    app.middlewares.extend([nosniff, error_middleware(metrics), socketio_sees_tls])
    deployment = choose_deployment(config, catalog)
    signaling = Signaling(config, policy, deployment, metrics)
    manager = SessionManager(config, store, catalog, signaling, policy, deployment)
    signaling.bind(manager)
    deployment.bind(manager, signaling.sio)
    signaling.sio.attach(app)
    app[SIGNALING_KEY] = signaling
    app[STORE_KEY] = store
    app[METRICS_KEY] = metrics
    app[DEPLOYMENT_KEY] = deployment
    deployment.install(app)
    setup_metrics(app, metrics)
    setup_readiness(
        app,
        [lambda: [] if manager.accepting else ["draining"], deployment.not_ready],
        lambda: {"sessions": len(manager.sessions), **deployment.describe()},
    )
    setup_http_api(app, config=config, store=store, deployment=deployment)
    setup_whip(
        app, config=config, store=store, manager=manager, deployment=deployment, policy=policy
    )

    def more_metrics() -> Iterator[Metric]:
        draining = int(not manager.accepting)
        yield GaugeMetricFamily("sidecoach_draining", "1: no new sessions here", draining)
        yield from _socket_metrics(signaling)
        yield from deployment.metrics()

    metrics.registry.register(NodeCollector(lambda: list(manager.sessions.values()), more_metrics))
    setup_pages(app, config=config, store=store, deployment=deployment, policy=policy)
    people = People(config, store, audit)
    app[PEOPLE_KEY] = people
    app.middlewares.append(login_middleware)
    renderer = Renderer()
    setup_signin(app, config, people, renderer)
    home = setup_home(app, config, people, catalog, renderer)
    setup_people_admin(app, people, renderer)
    signaling.login_alive = people.logins.alive

    async def signed_out(person_id: str, login: str | None) -> None:
        await signaling.signed_out(f"p-{person_id}", login)

    people.accounts.on_revoked = signed_out
    access = RecordingAccess(config, catalog, policy, audit, store, PersonAccess(people))
    comments = CommentStore(db)
    clips = ClipMaker()
    review = ReviewApi(access, store, comments, clips, on_comment=manager.comment_added)
    review.person_lessons = home.lessons
    setup_recording_api(app, access, on_delete=comments.delete_recording)
    setup_review_api(app, review)
    # a lesson's measures, computed off the loop once its recording is final
    measure_runs = MeasureRuns()
    catalog.on_finished = measure_runs.schedule
    setup_measures_api(app, access, measure_runs)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        background = TaskOwner("app")
        await comments.start()
        await people.logins.sweep()
        # every recording a killed server left is finalized before anything
        # else runs, so retention covers it and nothing appends to it
        await recover_recordings(catalog, config.recordings_dir, deployment.node_id)
        manager.start()
        background.spawn(watch_loop_lag(metrics.loop_lag.observe), name="event-loop lag")
        await deployment.start(config.node_url or f"http://127.0.0.1:{config.port}")
        background.spawn(
            run_retention(
                catalog,
                config.retention_days,
                config.retention_interval_s,
                on_deleted=comments.delete_recording,
            ),
            name="retention",
        )
        yield
        await background.aclose()
        await measure_runs.close()
        await clips.close()
        await people.close()
        await comments.close()
        await audit.close()

    async def stop_serving(app: web.Application) -> None:
        # on shutdown, before aiohttp waits for open connections: this node
        # leaves the deployment (its sessions' entries are released at once)
        # and its sessions and sockets close
        await deployment.stop()
        await signaling.close()

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(stop_serving)
    return app
