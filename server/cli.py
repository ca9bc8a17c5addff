"""Command line: ``sidecoach`` / ``python -m server``.

``serve`` (the default) runs the server; the other commands work on the
session store in the data directory directly, so they need no running server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from server import __version__
from server.access.invites import invite_links, invite_ttl_s, invite_url
from server.core.config import (
    Config,
    check_cluster_settings,
    check_network_settings,
    config_from_env,
    ensure_secret,
    node_id_of,
    with_overrides,
)
from server.core.errors import ConfigError, InvalidMessage, SessionEnded, SidecoachError
from server.core.roles import Role, SessionState
from server.core.tokens import issue_admin_token, issue_invite
from server.storage.sessions import SessionSettings, SessionStore, ensure_demo_session, parse_when

logger = logging.getLogger(__name__)

DEFAULT_ADMIN_TOKEN_TTL_S = 24 * 3600
_TOP_LEVEL_FLAGS = ("-h", "--help", "--version")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data directory (env SIDECOACH_DATA_DIR; ./data)")
    parser.add_argument(
        "--public-url", help="base URL used in invite links (env SIDECOACH_PUBLIC_URL)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidecoach", description="Self-hosted real-time coaching server."
    )
    parser.add_argument("--version", action="version", version=f"sidecoach {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (default)")
    _add_common(serve)
    serve.add_argument("--host", help="listen address (env SIDECOACH_HOST; 0.0.0.0)")
    serve.add_argument("--port", type=int, help="HTTP port (env SIDECOACH_PORT; 8080)")
    serve.add_argument(
        "--ice-listen-ips", help="comma list of local IPs for ICE (env SIDECOACH_ICE_LISTEN_IPS)"
    )
    serve.add_argument(
        "--ice-announced-ip", help="public IP announced in ICE (env SIDECOACH_ICE_ANNOUNCED_IP)"
    )
    serve.add_argument("--log-level", help="DEBUG, INFO, ... (env SIDECOACH_LOG_LEVEL; INFO)")
    serve.add_argument(
        "--tls-cert", help="PEM certificate chain: serve HTTPS (env SIDECOACH_TLS_CERT)"
    )
    serve.add_argument("--tls-key", help="PEM private key (env SIDECOACH_TLS_KEY)")
    serve.add_argument(
        "--self-signed",
        action="store_true",
        default=None,
        help="serve HTTPS with a certificate generated into DATA_DIR/tls; "
        "for trying it out, NOT for production (env SIDECOACH_SELF_SIGNED)",
    )
    serve.add_argument(
        "--http-redirect-port",
        type=int,
        help="also answer plain HTTP on this port with a redirect to HTTPS "
        "(env SIDECOACH_HTTP_REDIRECT_PORT)",
    )
    serve.add_argument(
        "--demo", action="store_true", help='create or reuse "Demo lesson" and print its links'
    )
    serve.add_argument(
        "--log-format", choices=["text", "json"], help="log lines (env SIDECOACH_LOG_FORMAT; text)"
    )
    # -- several nodes ---------------------------------------------------------
    serve.add_argument(
        "--redis-url",
        help="Redis of a deployment of several nodes (env SIDECOACH_REDIS_URL; none: one node)",
    )
    serve.add_argument(
        "--node-id", help="this node's name in the deployment (env SIDECOACH_NODE_ID; host-port)"
    )
    serve.add_argument(
        "--node-url",
        help="where other nodes reach this one (env SIDECOACH_NODE_URL; http://127.0.0.1:PORT)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        nargs="?",
        const=0,
        metavar="N",
        help="run N node processes sharing the port (default when given: one per core);"
        " needs a Redis URL",
    )
    serve.add_argument(
        "--drain-deadline",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM take no new sessions and exit when nobody is left, at the latest"
        " after this long (env SIDECOACH_DRAIN_DEADLINE_S; 0: at once); a second SIGTERM"
        " exits at once",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    session = sub.add_parser("session", help="create, list or end sessions")
    session_sub = session.add_subparsers(dest="session_command", metavar="ACTION", required=True)
    create = session_sub.add_parser("create", help="schedule a session, print its invite links")
    _add_common(create)
    create.add_argument("--title", required=True)
    create.add_argument("--teacher-name", required=True)
    create.add_argument("--no-recording", action="store_true", help="do not record")
    create.add_argument("--whisper-single", action="store_true", help="one whispering coach")
    create.add_argument("--scheduled-for", help="ISO-8601 date-time (naive = local time)")
    listing = session_sub.add_parser("list", help="list sessions as JSON")
    _add_common(listing)
    listing.add_argument("--state", choices=[s.value for s in SessionState])
    end = session_sub.add_parser("end", help="mark a session ended in the store")
    _add_common(end)
    end.add_argument("session_id", metavar="ID")

    admin = sub.add_parser("admin-token", help="print a token for the admin HTTP API")
    _add_common(admin)
    admin.add_argument("--ttl-s", type=int, default=DEFAULT_ADMIN_TOKEN_TTL_S)

    people = sub.add_parser("admin", help="accounts: create-user bootstraps the first admin")
    people_sub = people.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    user = people_sub.add_parser(
        "create-user", help="make an account (default: a district admin) with a password"
    )
    _add_common(user)
    user.add_argument("--name", required=True)
    user.add_argument("--email", required=True)
    user.add_argument("--role", default="district-admin",
                      choices=["district-admin", "school-admin", "coach", "teacher"])
    user.add_argument("--school", help="the school's name (made if missing)")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from standard input (else one is made and printed)")

    invite = sub.add_parser("invite", help="print a fresh invite link")
    _add_common(invite)
    invite.add_argument("session_id", metavar="ID")
    invite.add_argument("--role", required=True, choices=[r.value for r in Role])
    invite.add_argument("--name")
    invite.add_argument("--ttl-s", type=int, help="seconds (default: the token TTL limit)")
    return parser


def build_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    """Environment, then CLI flags on top, then a secret from the data dir."""
    config = config_from_env(environ)
    ice_ips = getattr(args, "ice_listen_ips", None)
    data_dir = getattr(args, "data_dir", None)
    tls_cert, tls_key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    config = with_overrides(
        config,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=Path(data_dir) if data_dir else None,
        public_url=getattr(args, "public_url", None),
        ice_listen_ips=(
            tuple(p.strip() for p in ice_ips.split(",") if p.strip()) if ice_ips else None
        ),
        ice_announced_ip=getattr(args, "ice_announced_ip", None),
        log_level=getattr(args, "log_level", None),
        tls_cert=Path(tls_cert) if tls_cert else None,
        tls_key=Path(tls_key) if tls_key else None,
        self_signed=getattr(args, "self_signed", None),
        http_redirect_port=getattr(args, "http_redirect_port", None),
        log_format=getattr(args, "log_format", None),
        redis_url=getattr(args, "redis_url", None),
        node_id=getattr(args, "node_id", None),
        node_url=getattr(args, "node_url", None),
        drain_deadline_s=getattr(args, "drain_deadline", None),
    )
    return ensure_secret(config)


def configure_logging(level: str, fmt: str = "text", node: str = "") -> None:
    """Log lines with their session/participant/producer context (text or JSON)."""
    from server.ops.log_format import configure_logging as configure

    configure(level, fmt, node)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _with_store(config: Config, fn: Callable[[SessionStore], Awaitable[int]]) -> int:
    from server.app import open_store  # the app (and aiortc) load only here

    async def run() -> int:
        store = await open_store(config)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _cmd_serve(args: argparse.Namespace, config: Config) -> int:
    if args.demo:

        async def demo(store: SessionStore) -> int:
            record = await ensure_demo_session(store)
            links = invite_links(config, record)
            print(f"Demo lesson {record.id}:", flush=True)
            for role, url in links.items():
                print(f"  {role:<8} {url}", flush=True)
            from server.people.bootstrap import ensure_demo_district
            from server.people.service import People
            from server.storage.audit import AuditLog
            from server.storage.lessons import SqlSessionStore

            assert isinstance(store, SqlSessionStore)
            demo_people = await ensure_demo_district(People(config, store, AuditLog(store.db)))
            print(f"Demo district: sign in at {config.base_url}/signin", flush=True)
            for who in (demo_people.teacher, demo_people.coach, demo_people.admin):
                print(f"  {who}  password {demo_people.password}", flush=True)
            # the lobby keeps the admin token in the tab and drops it from the URL
            admin = issue_admin_token(config.secret, ttl_s=DEFAULT_ADMIN_TOKEN_TTL_S)
            print(f"  {'lobby':<8} {config.base_url}/?{urlencode({'admin': admin})}", flush=True)
            return 0

        _with_store(config, demo)
    if args.workers is not None:
        from server.cluster.workers import run_workers

        return run_workers(config, args.workers, args.argv)
    # Imported here: the app (and aiortc with it) loads only when serving.
    from server.serve import serve

    return asyncio.run(serve(config, demo=args.demo, reuse_port=args.reuse_port))


def _cmd_session(args: argparse.Namespace, config: Config) -> int:
    if args.session_command == "create":
        settings = SessionSettings(
            recording=not args.no_recording, whisper_single=args.whisper_single
        )
        scheduled_for = parse_when(args.scheduled_for)

        async def create(store: SessionStore) -> int:
            record = await store.create(
                title=args.title,
                teacher_name=args.teacher_name,
                settings=settings,
                scheduled_for=scheduled_for,
            )
            links = invite_links(config, record)
            _print_json({"session": record.to_json(), "invites": links})
            return 0

        return _with_store(config, create)

    if args.session_command == "list":
        states = [SessionState(args.state)] if args.state else None

        async def listing(store: SessionStore) -> int:
            records = await store.list(states)
            _print_json({"sessions": [r.to_json() for r in records]})
            return 0

        return _with_store(config, listing)

    async def end(store: SessionStore) -> int:
        record = await store.set_state(args.session_id, SessionState.ENDED, at=time.time())
        _print_json({"session": record.to_json()})
        return 0

    return _with_store(config, end)


def _cmd_invite(args: argparse.Namespace, config: Config) -> int:
    async def invite(store: SessionStore) -> int:
        record = await store.get(args.session_id)
        if record.state is SessionState.ENDED:
            raise SessionEnded(f"session {record.id} has ended")
        max_ttl = invite_ttl_s(config, record)
        ttl_s = max_ttl if args.ttl_s is None else args.ttl_s
        if not 1 <= ttl_s <= max_ttl:
            raise InvalidMessage(f"--ttl-s must be 1..{max_ttl}")
        token = issue_invite(config.secret, record.id, Role(args.role), ttl_s=ttl_s, name=args.name)
        print(invite_url(config, token))
        return 0

    return _with_store(config, invite)


def _cmd_admin(args: argparse.Namespace, config: Config) -> int:
    from server.people.bootstrap import create_user
    from server.people.principal import PersonRole
    from server.people.service import People
    from server.storage.audit import AuditLog
    from server.storage.lessons import SqlSessionStore

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None

    async def create(store: SessionStore) -> int:
        assert isinstance(store, SqlSessionStore)
        people = People(config, store, AuditLog(store.db))
        role = PersonRole(args.role)
        if role is not PersonRole.DISTRICT_ADMIN and not args.school:
            raise InvalidMessage(f"--school is needed for a {role}")
        person_id, chosen = await create_user(
            people, name=args.name, email=args.email, role=role,
            school=args.school, password=password,
        )
        print(f"{role} {args.email} ({person_id}) can sign in at {config.base_url}/signin")
        if password is None:
            print(f"password (to be changed at the first sign-in): {chosen}")
        return 0

    return _with_store(config, create)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in _TOP_LEVEL_FLAGS):
        argv = ["serve", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # --workers runs this command line again, once per worker
    try:
        config = build_config(args)
        if args.command == "serve":
            check_network_settings(config)
            check_cluster_settings(config)
            if args.workers is not None and not config.redis_url:
                raise ConfigError(
                    "--workers needs a Redis URL (SIDECOACH_REDIS_URL or --redis-url), e.g."
                    " redis://127.0.0.1:6379/0 (Debian: apt install redis-server)"
                )
            node = node_id_of(config) if config.redis_url and args.workers is None else ""
            configure_logging(config.log_level, config.log_format, node)
    except (ValueError, OSError) as exc:
        print(f"sidecoach: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "serve":
            return _cmd_serve(args, config)
        if args.command == "session":
            return _cmd_session(args, config)
        if args.command == "admin-token":
            if args.ttl_s <= 0:
                parser.error("--ttl-s must be positive")
            print(issue_admin_token(config.secret, ttl_s=args.ttl_s))
            return 0
        if args.command == "invite":
            return _cmd_invite(args, config)
        if args.command == "admin":
            return _cmd_admin(args, config)
    except SidecoachError as exc:
        print(f"sidecoach: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2  # not reached: parser.error exits
