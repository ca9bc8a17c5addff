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
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from server import __version__
from server.access.invites import invite_links, invite_ttl_s, invite_url
from server.core.config import (
    Config,
    check_cluster_settings,
    check_network_settings,
    node_id_of,
)
from server.core.errors import ConfigError, InvalidMessage, SessionEnded, SidecoachError
from server.core.roles import Role, SessionState
from server.core.settings import SETTINGS, Loaded, load, with_secret
from server.core.tokens import INVITE_ROLES, issue_admin_token, issue_camera_token, issue_invite
from server.storage.sessions import SessionSettings, SessionStore, parse_when

logger = logging.getLogger(__name__)

DEFAULT_ADMIN_TOKEN_TTL_S = 24 * 3600
_TOP_LEVEL_FLAGS = ("-h", "--help", "--version")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data directory (env SIDECOACH_DATA_DIR; ./data)")
    parser.add_argument(
        "--public-url", help="base URL used in invite links (env SIDECOACH_PUBLIC_URL)"
    )


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _add_serve_flags(serve: argparse.ArgumentParser) -> None:
    _add_common(serve)
    serve.add_argument("--host", help="listen address (env SIDECOACH_HOST; 0.0.0.0)")
    serve.add_argument("--port", help="HTTP port (env SIDECOACH_PORT; 8080)")
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
        help="also answer plain HTTP on this port with a redirect to HTTPS "
        "(env SIDECOACH_HTTP_REDIRECT_PORT)",
    )
    serve.add_argument("--log-format", help="text or json (env SIDECOACH_LOG_FORMAT; text)")
    serve.add_argument(
        "--lan",
        action="store_true",
        default=None,
        help="serve HTTPS on this machine's LAN address with the self-signed certificate"
        " and plain HTTP on localhost (trying it out; on with --demo when no host, TLS or"
        " public URL is set; env SIDECOACH_LAN)",
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
        "--drain-deadline",
        metavar="SECONDS",
        help="on SIGTERM take no new sessions and exit when nobody is left, at the latest"
        " after this long (env SIDECOACH_DRAIN_DEADLINE_S; 0: at once); a second SIGTERM"
        " exits at once",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sidecoach", description="Self-hosted real-time coaching server.")
    parser.add_argument("--version", action="version", version=f"sidecoach {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (default)")
    _add_serve_flags(serve)
    serve.add_argument(
        "--demo", action="store_true", help='create or reuse "Demo lesson" and print its links'
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
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    check = sub.add_parser(
        "check-config",
        help="print the configuration serve would use, with the source of each value"
        " (secrets redacted); exit 2 if it would refuse it",
    )
    _add_serve_flags(check)

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

    _add_cluster_commands(sub)

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
    roles = [r.value for r in Role if r in INVITE_ROLES]
    invite.add_argument("--role", required=True, choices=roles)
    invite.add_argument("--name")
    invite.add_argument("--ttl-s", type=int, help="seconds (default: the token TTL limit)")

    camera = sub.add_parser(
        "camera-token", help="print a camera token (WHIP: OBS, an encoder) for a lesson"
    )
    _add_common(camera)
    camera.add_argument("session_id", metavar="ID")
    camera.add_argument("--name", help="how pages show the device (with ' (WHIP)')")
    camera.add_argument("--ttl-s", type=int, help="seconds (default: the token TTL limit)")
    return parser


def serve_flags(args: argparse.Namespace) -> dict[str, str | None]:
    """The ``serve`` flags given, as text (settings.py parses them)."""
    flags: dict[str, str | None] = {}
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        value = getattr(args, setting.flag.removeprefix("--").replace("-", "_"), None)
        if value is True:
            value = "1"
        flags[setting.flag] = None if value is None else str(value)
    return flags


def load_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Loaded:
    """Environment, then CLI flags on top, then a secret from the data dir
    (made there at the first start, except by ``check-config``)."""
    loaded = load(environ, serve_flags(args))
    return with_secret(loaded, create=args.command != "check-config")


def _add_cluster_commands(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="several nodes: check the deployment, Redis TLS")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    check = cluster_sub.add_parser(
        "check", help="live nodes, shared secret, node URLs, Redis secured: one line each"
    )
    _add_common(check)
    check.add_argument("--redis-url", help="the deployment's Redis (env SIDECOACH_REDIS_URL)")
    redis_tls = cluster_sub.add_parser(
        "redis-tls", help="write a CA and a certificate for Redis (rediss://) into DIR"
    )
    redis_tls.add_argument("directory", metavar="DIR")
    redis_tls.add_argument(
        "--name", action="append", default=[], help="Redis's host name or IP (repeat for more)"
    )


def build_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    return load_config(args, environ).config


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
    if args.workers is not None:
        from server.cluster.workers import run_workers

        return run_workers(config, args.workers, args.argv)
    # Imported here: the app (and aiortc with it) loads only when serving.
    from server.serve import exit_at_once, serve

    exit_at_once(asyncio.run(serve(config, demo=args.demo, reuse_port=args.reuse_port)))


def _cmd_check_config(loaded: Loaded) -> int:
    """The effective configuration, with sources; the checks ``serve`` makes."""
    print("\n".join(loaded.lines()))
    check_network_settings(loaded.config)
    check_cluster_settings(loaded.config)
    from server.ops.tls import check_tls_files

    check_tls_files(loaded.config)
    print("sidecoach: the configuration is usable", file=sys.stderr)
    return 0


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


def _cmd_camera_token(args: argparse.Namespace, config: Config) -> int:
    async def mint(store: SessionStore) -> int:
        record = await store.get(args.session_id)
        if record.state is SessionState.ENDED:
            raise SessionEnded(f"session {record.id} has ended")
        max_ttl = invite_ttl_s(config, record)
        ttl_s = max_ttl if args.ttl_s is None else args.ttl_s
        if not 1 <= ttl_s <= max_ttl:
            raise InvalidMessage(f"--ttl-s must be 1..{max_ttl}")
        token = issue_camera_token(config.secret, record.id, ttl_s=ttl_s, name=args.name)
        _print_json({"whip_url": f"{config.base_url}/whip/{record.id}", "token": token})
        return 0

    return _with_store(config, mint)


def _cmd_cluster(args: argparse.Namespace, config: Config) -> int:
    from server.cluster.check import check

    check_cluster_settings(config)
    if not config.redis_url:
        raise ConfigError(
            "SIDECOACH_REDIS_URL (--redis-url) is not set: there is no deployment to check"
        )
    lines, ok = asyncio.run(check(config))
    print("\n".join(lines))
    return 0 if ok else 1


def _cmd_redis_tls(args: argparse.Namespace) -> int:
    from server.cluster.certs import make_redis_tls

    made = make_redis_tls(Path(args.directory), list(args.name))
    print(f"{made.ca}: give it to every node (SIDECOACH_REDIS_TLS_CA)")
    print(f"{made.cert}, {made.key}: redis.conf's tls-cert-file and tls-key-file")
    return 0


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
    if args.command == "cluster" and args.cluster_command == "redis-tls":
        try:  # needs no configuration (and makes no secret)
            return _cmd_redis_tls(args)
        except (ValueError, OSError) as exc:
            print(f"sidecoach: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "check-config":
            return _cmd_check_config(load_config(args))
        config = build_config(args)
        if args.command == "serve":
            config = _serve_config(args, config)
            node = node_id_of(config) if config.redis_url and args.workers is None else ""
            configure_logging(config.log_level, config.log_format, node)
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
        if args.command == "camera-token":
            return _cmd_camera_token(args, config)
        if args.command == "cluster":
            return _cmd_cluster(args, config)
        if args.command == "admin":
            return _cmd_admin(args, config)
    except ConfigError as exc:
        # one line, exit code 2, whether found before or while starting
        print(f"sidecoach: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except SidecoachError as exc:
        print(f"sidecoach: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")


def _serve_config(args: argparse.Namespace, config: Config) -> Config:
    """``serve``'s checks; ``--demo`` alone also means ``--lan``."""
    if args.demo and not (
        config.lan
        or config.tls
        or config.public_url
        or config.host not in ("0.0.0.0", "::", "")
        or args.workers is not None
    ):
        config = replace(config, lan=True)
    check_network_settings(config)
    check_cluster_settings(config)
    from server.ops.tls import check_tls_files

    check_tls_files(config)
    if args.workers is not None and not config.redis_url:
        raise ConfigError(
            "--workers needs a Redis URL (SIDECOACH_REDIS_URL or --redis-url), e.g."
            " redis://127.0.0.1:6379/0 (Debian: apt install redis-server)"
        )
    return config
