"""Running the app: ``serve`` listens (HTTP or HTTPS, an optional
plain-HTTP redirect) until SIGTERM/SIGINT, then ``drain`` finalizes every
recording and closes every connection."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlencode

from aiohttp import web

from server.access.invites import invite_links
from server.app import ACCESS_LOG_CLASS, DEPLOYMENT_KEY, SIGNALING_KEY, create_app, open_store
from server.cluster.redis_conn import preflight
from server.core.config import Config
from server.core.errors import ConfigError
from server.core.tokens import issue_admin_token
from server.ops import lan
from server.ops.tls import TlsSetup, load_tls
from server.recording.catalog import RecordingCatalog
from server.storage.sessions import SessionStore, ensure_demo_session

logger = logging.getLogger(__name__)

#: after the drain, open HTTP/WebSocket connections get this long to finish
SHUTDOWN_GRACE_S = 1.0
#: the demo lobby's admin link is valid this long
DEMO_ADMIN_TOKEN_TTL_S = 24 * 3600
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
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
    also listens on a loopback port of its own, its node URL. A port that
    is taken, or a certificate that cannot be read, is a ``ConfigError``
    raised before anything starts."""
    config, lan_plan = _with_lan(config)
    binds = _listen_addresses(config, lan_plan)
    if not reuse_port:
        for host, port, _ in binds:
            check_free(host, port)
    loop = asyncio.get_running_loop()
    tls = await loop.run_in_executor(None, load_tls, config)
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
    app = create_app(config, store, catalog)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=ACCESS_LOG_CLASS,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    runners = [runner]
    sites: list[web.BaseSite] = []
    stop = StopSignals(config)
    try:
        await runner.setup()
        for host, port, secure in binds:
            site = web.TCPSite(
                runner,
                host,
                port,
                ssl_context=tls.context if tls and secure else None,
                reuse_port=reuse_port or None,
            )
            await _start(site, host, port)
            sites.append(site)
        if private is not None:
            sites.append(web.SockSite(runner, private))
            await sites[-1].start()
        if config.http_redirect_port is not None:
            redirect = web.AppRunner(https_redirect_app(config), handle_signals=False)
            await redirect.setup()
            runners.append(redirect)
            site = web.TCPSite(
                redirect, config.host, config.http_redirect_port, reuse_port=reuse_port or None
            )
            await _start(site, config.host, config.http_redirect_port)
            sites.append(site)
            print(f"Plain HTTP on port {config.http_redirect_port} redirects to HTTPS", flush=True)
        _announce(config, tls, lan_plan)
        if demo:
            await print_demo_links(config, store, lan_plan)
        await _run_until_stopped(app, config, stop, runners, sites)
    finally:
        logger.info("shutting down")
        for r in reversed(runners):
            await r.cleanup()
        await catalog.close()
        await store.close()
        if stop.at is not None:
            logger.info("stopped %.2f s after the stop signal", time.monotonic() - stop.at)
    return 0


async def _run_until_stopped(
    app: web.Application,
    config: Config,
    stop: StopSignals,
    runners: list[web.AppRunner],
    sites: list[web.BaseSite],
) -> None:
    """Until the first stop signal; then drain, stopping the listening
    sites (and kept-alive connections) before every socket is closed."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.on_signal)

    async def stop_listening() -> None:
        for one in sites:
            await one.stop()
        for r in runners:  # kept-alive connections take no further request
            if r.server is not None:
                r.server.pre_shutdown()

    await stop.first.wait()
    await drain(app, config.drain_deadline_s, stop.second, stop_listening)


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


def _with_lan(config: Config) -> tuple[Config, lan.LanPlan | None]:
    """``--lan``: HTTPS (self-signed) on the LAN address, links to it. Also,
    a self-signed server on every address: links to the LAN address, never
    to ``https://localhost`` (which a tablet cannot open)."""
    if config.lan:
        plan = lan.plan(config.port)
        if not plan.lan_ips:
            return config, plan
        public_url = config.public_url or plan.https_url
        return replace(config, self_signed=True, public_url=public_url), plan
    if config.self_signed and not config.public_url and config.host in WILDCARD_HOSTS:
        ips = lan.lan_addresses()
        if ips:
            https_url = lan.LanPlan(ips, config.port).https_url
            return replace(config, public_url=https_url), None
    return config, None


def _listen_addresses(
    config: Config, plan: lan.LanPlan | None
) -> list[tuple[str, int, bool]]:
    """(host, port, with TLS) of each listening site."""
    if plan is None:
        return [(config.host, config.port, config.tls)]
    sites = [(ip, config.port, True) for ip in plan.lan_ips]
    return [*sites, (lan.LOCALHOST_IP, config.port, False)]


def check_free(host: str, port: int) -> None:
    """Refuse (one line, naming the setting) a port that is taken or an
    address this machine does not have, before anything starts."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ConfigError(f"SIDECOACH_HOST (--host): cannot listen on {host!r}: {exc}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise _bind_error(host, port, exc) from None


def _bind_error(host: str, port: int, exc: OSError) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            f"SIDECOACH_PORT (--port): port {port} on {host or '*'} is already in use"
            " (another Sidecoach, or another program: pick another port)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"SIDECOACH_HOST (--host): {host} is not an address of this machine")
    return ConfigError(f"SIDECOACH_PORT (--port): cannot listen on {host}:{port}: {exc.strerror}")


async def _start(site: web.TCPSite, host: str, port: int) -> None:
    try:
        await site.start()
    except OSError as exc:
        raise _bind_error(host, port, exc) from None


def _announce(config: Config, tls: TlsSetup | None, plan: lan.LanPlan | None) -> None:
    if plan is not None:
        lines = lan.banner(plan, tls.fingerprint if tls else "", tls.cert_path if tls else Path())
        print("\n".join(lines), flush=True)
        if tls is not None:
            logger.warning("serving a self-signed certificate: NOT for production")
        return
    if tls is not None and tls.self_signed:
        # printed, not only logged: the person starting it compares this
        # with what the teacher's browser shows before accepting it
        print(
            "HTTPS with a SELF-SIGNED certificate, NOT for production (browsers will warn;"
            f" check the fingerprint before accepting it): {tls.cert_path}\n"
            f"  SHA-256 fingerprint {tls.fingerprint}",
            flush=True,
        )
        logger.warning("serving a self-signed certificate: NOT for production")
    elif tls is not None:
        logger.info("HTTPS with %s (SHA-256 %s)", tls.cert_path, tls.fingerprint)
    print(f"Sidecoach is listening on {config.base_url}", flush=True)


async def print_demo_links(config: Config, store: SessionStore, plan: lan.LanPlan | None) -> None:
    """The demo lesson's links (and, on a LAN, QR codes of the teacher's and
    the coach's: a tablet scans them)."""
    record = await ensure_demo_session(store)
    links = invite_links(config, record)
    # the lobby keeps the admin token in the tab and drops it from the URL
    admin = issue_admin_token(config.secret, ttl_s=DEMO_ADMIN_TOKEN_TTL_S)
    links["lobby"] = f"{config.base_url}/?{urlencode({'admin': admin})}"
    out = [f"Demo lesson {record.id}:"]
    out += [f"  {role:<8} {url}" for role, url in links.items()]
    if plan is not None and plan.lan_ips:
        out.append(f"  (on this machine, {plan.local_url} works in their place)")
        for role in ("teacher", "coach"):
            out.append(f"Scan with a tablet or phone on this network to open the {role}'s page:")
            out += ["  " + line for line in lan.qr_lines(links[role])]
    print("\n".join(out), flush=True)


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
