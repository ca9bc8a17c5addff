"""Where each setting comes from: every ``SIDECOACH_*`` variable and
``serve`` flag is parsed here, once, and range-checked with its name in the
refusal (``SIDECOACH_PORT: "abc" is not a port number``). The result is the
frozen ``Config`` and, for ``sidecoach check-config``, the source of each
value (flag, env, default or data dir), with every secret redacted.

A refusal is a ``ConfigError`` of one line; nothing has been changed when it
is raised (no file written, no port taken).
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ifaddr

from server.core.config import SECRET_FILE_NAME, Config, IceServer, Limits
from server.core.errors import ConfigError

#: a secret (``SIDECOACH_SECRET`` or ``DATA_DIR/secret``) has at least this
#: many bytes: it signs every invite and admin token
MIN_SECRET_BYTES = 32
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LIMIT_PREFIX = "SIDECOACH_LIMIT_"

#: sources, as ``check-config`` shows them
DEFAULT, ENV, FLAG, DATA_DIR = "default", "env", "flag", "data dir"

Parser = Callable[[str], Any]


def _quoted(raw: str) -> str:
    return '"' + raw.replace('"', '\\"') + '"'


def parse_port(raw: str) -> int:
    try:
        port = int(raw.strip())
    except ValueError:
        raise ValueError(f"{_quoted(raw)} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{_quoted(raw)} is not a port number (0..65535)")
    return port


def parse_positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{_quoted(raw)} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{_quoted(raw)} must be more than 0")
    return value


def _number(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{_quoted(raw)} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{_quoted(raw)} is not a finite number")
    return value


def parse_positive_float(raw: str) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError(f"{_quoted(raw)} must be more than 0")
    return value


def parse_non_negative_float(raw: str) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError(f"{_quoted(raw)} must be 0 or more")
    return value


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{_quoted(raw)} is not 1/0, true/false, yes/no or on/off")


def parse_text(raw: str) -> str:
    return raw.strip()


def parse_path(raw: str) -> Path | None:
    return Path(raw.strip()) if raw.strip() else None


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def parse_log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"{_quoted(raw)} is not a log level ({', '.join(LOG_LEVELS)})")
    return level


def parse_ip(raw: str) -> str | None:
    if not raw.strip():
        return None
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise ValueError(f"{_quoted(raw)} is not an IP address") from None


def local_addresses() -> set[str]:
    """Every address of this machine's interfaces (IPv6 without scope)."""
    found = {"127.0.0.1", "::1"}
    for adapter in ifaddr.get_adapters():
        for addr in adapter.ips:
            ip = addr.ip if isinstance(addr.ip, str) else addr.ip[0]
            found.add(str(ipaddress.ip_address(ip.split("%")[0])))
    return found


def parse_listen_ips(raw: str) -> tuple[str, ...]:
    ips = tuple(str(parse_ip(p)) for p in parse_list(raw))
    mine = local_addresses()
    for ip in ips:
        if ip not in mine:
            raise ValueError(
                f"{_quoted(ip)} is not an address of this machine (it has "
                f"{', '.join(sorted(mine))})"
            )
    return ips


def parse_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{_quoted(raw)} is not an http(s)://host[:port] URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError(f"{_quoted(raw)} has a bad port") from None
    return url


def choice(*allowed: str) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"{_quoted(raw)} is not one of {', '.join(allowed)}")
        return value

    return parse


def parse_secret(raw: str) -> str:
    if raw and len(raw.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{len(raw.encode())} bytes, at least {MIN_SECRET_BYTES} are needed"
            " (e.g. the output of: openssl rand -base64 48)"
        )
    return raw


@dataclass(frozen=True)
class Setting:
    """One ``Config`` field: its variable, its ``serve`` flag, its parser."""

    field: str
    env: str
    flag: str | None
    parse: Parser
    secret: bool = False

    @property
    def label(self) -> str:
        return f"{self.env} ({self.flag})" if self.flag else self.env


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "SIDECOACH_HOST", "--host", parse_text),
    Setting("port", "SIDECOACH_PORT", "--port", parse_port),
    Setting("data_dir", "SIDECOACH_DATA_DIR", "--data-dir", parse_path),
    Setting("secret", "SIDECOACH_SECRET", None, parse_secret, secret=True),
    Setting("public_url", "SIDECOACH_PUBLIC_URL", "--public-url", parse_url),
    Setting("ice_listen_ips", "SIDECOACH_ICE_LISTEN_IPS", "--ice-listen-ips", parse_listen_ips),
    Setting("ice_announced_ip", "SIDECOACH_ICE_ANNOUNCED_IP", "--ice-announced-ip", parse_ip),
    Setting("turn_secret", "SIDECOACH_TURN_SECRET", None, parse_text, secret=True),
    Setting("turn_urls", "SIDECOACH_TURN_URLS", None, parse_list),
    Setting(
        "ice_transport_policy", "SIDECOACH_ICE_TRANSPORT_POLICY", None, choice("all", "relay")
    ),
    Setting("tls_cert", "SIDECOACH_TLS_CERT", "--tls-cert", parse_path),
    Setting("tls_key", "SIDECOACH_TLS_KEY", "--tls-key", parse_path),
    Setting("self_signed", "SIDECOACH_SELF_SIGNED", "--self-signed", parse_bool),
    Setting("lan", "SIDECOACH_LAN", "--lan", parse_bool),
    Setting(
        "http_redirect_port", "SIDECOACH_HTTP_REDIRECT_PORT", "--http-redirect-port", parse_port
    ),
    Setting("redis_url", "SIDECOACH_REDIS_URL", "--redis-url", parse_text),
    Setting("redis_tls_ca", "SIDECOACH_REDIS_TLS_CA", None, parse_path),
    Setting("store", "SIDECOACH_STORE", None, choice("sqlite", "redis")),
    Setting("node_id", "SIDECOACH_NODE_ID", "--node-id", parse_text),
    Setting("node_url", "SIDECOACH_NODE_URL", "--node-url", parse_url),
    Setting(
        "drain_deadline_s",
        "SIDECOACH_DRAIN_DEADLINE_S",
        "--drain-deadline",
        parse_non_negative_float,
    ),
    Setting("log_level", "SIDECOACH_LOG_LEVEL", "--log-level", parse_log_level),
    Setting("log_format", "SIDECOACH_LOG_FORMAT", "--log-format", choice("text", "json")),
    Setting("retention_days", "SIDECOACH_RETENTION_DAYS", None, parse_positive_float),
    Setting(
        "lifecycle_interval_s", "SIDECOACH_LIFECYCLE_INTERVAL_S", None, parse_positive_float
    ),
)
#: the static ICE servers handed to pages as they are
ICE_SERVERS = "SIDECOACH_ICE_SERVERS"
TURN_USERNAME = "SIDECOACH_TURN_USERNAME"
TURN_CREDENTIAL = "SIDECOACH_TURN_CREDENTIAL"

def limit_env(name: str) -> str:
    return LIMIT_PREFIX + name.upper()


@dataclass
class Loaded:
    """A Config and where each of its values came from."""

    config: Config
    #: variable name -> (source, shown value)
    sources: dict[str, tuple[str, str]]

    def lines(self) -> list[str]:
        """``check-config``'s table, one setting a line, secrets redacted."""
        width = max(len(k) for k in self.sources)
        return [
            f"{name:<{width}}  {value}  [{source}]"
            for name, (source, value) in self.sources.items()
        ]


def _shown(setting_secret: bool, value: Any) -> str:
    if setting_secret:
        return f"(redacted, {len(str(value).encode())} bytes)" if value else "(not set)"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "(none)"
    if value is None or value == "":
        return "(not set)"
    return str(value)


def redact_url(url: str) -> str:
    """``url`` without a password (a Redis URL may carry one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _read(name: str, raw: str, parse: Parser) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def load(
    environ: Mapping[str, str] | None = None, flags: Mapping[str, str | None] | None = None
) -> Loaded:
    """Parse ``SIDECOACH_*`` (``environ``, default ``os.environ``) and the
    given ``serve`` flags (flag -> raw text) on top: a Config, without the
    data directory's secret (``with_secret`` adds it). An empty variable or
    flag is not set (its default applies)."""
    env = os.environ if environ is None else environ
    given = dict(flags or {})
    defaults = Config()
    values: dict[str, Any] = {}
    sources: dict[str, tuple[str, str]] = {}
    for s in SETTINGS:
        source, value = DEFAULT, getattr(defaults, s.field)
        raw_env = env.get(s.env, "")
        if raw_env.strip():
            source, value = ENV, _read(s.env, raw_env, s.parse)
        raw_flag = given.get(s.flag) if s.flag is not None else None
        if raw_flag is not None and raw_flag.strip():
            source, value = f"{FLAG} {s.flag}", _read(str(s.flag), raw_flag, s.parse)
        values[s.field] = value
        shown = redact_url(value) if s.field == "redis_url" and value else value
        sources[s.label] = (source, _shown(s.secret, shown))
    values["ice_servers"] = _ice_servers(env, sources)
    values["limits"] = _limits(env, sources)
    return Loaded(replace(defaults, **values), sources)


def _ice_servers(
    env: Mapping[str, str], sources: dict[str, tuple[str, str]]
) -> tuple[IceServer, ...]:
    urls = parse_list(env.get(ICE_SERVERS, ""))
    for url in urls:
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise ConfigError(f"{ICE_SERVERS}: {_quoted(url)} is not a stun:, turn: or turns: URL")
    username, credential = env.get(TURN_USERNAME), env.get(TURN_CREDENTIAL)
    for name, value, secret in (
        (ICE_SERVERS, urls, False),
        (TURN_USERNAME, username, False),
        (TURN_CREDENTIAL, credential, True),
    ):
        sources[name] = (ENV if name in env else DEFAULT, _shown(secret, value))
    if not urls:
        return ()
    return (IceServer(urls=urls, username=username, credential=credential),)


def _limits(env: Mapping[str, str], sources: dict[str, tuple[str, str]]) -> Limits:
    defaults = Limits()
    known = {limit_env(f.name): f for f in fields(Limits)}
    for name in env:
        if name.startswith(LIMIT_PREFIX) and name not in known:
            near = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"{name}: there is no such limit{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        default = getattr(defaults, f.name)
        raw = env.get(name)
        if raw is None or not raw.strip():
            sources[name] = (DEFAULT, str(default))
            continue
        parse = parse_positive_float if isinstance(default, float) else parse_positive_int
        kwargs[f.name] = _read(name, raw, parse)
        sources[name] = (ENV, str(kwargs[f.name]))
    return Limits(**kwargs)


def secret_path(config: Config) -> Path:
    return config.data_dir / SECRET_FILE_NAME


def _check_data_dir(config: Config) -> None:
    label = next(s.label for s in SETTINGS if s.field == "data_dir")
    path = config.data_dir
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{label}: {_quoted(str(path))} is a file, not a directory")


def with_secret(loaded: Loaded, *, create: bool = True) -> Loaded:
    """The Loaded config with its secret: the configured one, or the one
    kept in ``DATA_DIR/secret`` (made there when missing and ``create``).
    A kept secret shorter than ``MIN_SECRET_BYTES`` is refused."""
    config = loaded.config
    _check_data_dir(config)
    if config.secret:
        return loaded
    path = secret_path(config)
    label = "SIDECOACH_SECRET"
    if path.exists():
        try:
            secret = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{label}: cannot read {path}: {exc.strerror or exc}") from None
        try:
            parse_secret(secret)
        except ValueError as exc:
            raise ConfigError(f"{label} (kept in {path}): {exc}") from None
        if not secret:
            raise ConfigError(f"{label} (kept in {path}): the file is empty")
        shown = (f"{DATA_DIR} {path}", _shown(True, secret))
    elif create:
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_urlsafe(48)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"SIDECOACH_DATA_DIR (--data-dir): cannot keep a secret in {path}: "
                f"{exc.strerror or exc}"
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        logging.getLogger(__name__).info("made a new secret in %s", path)
        shown = (f"{DATA_DIR} {path} (made now)", _shown(True, secret))
    else:
        secret = ""
        shown = (f"{DATA_DIR} {path}", "(made there at the first start)")
    loaded.sources["SIDECOACH_SECRET"] = shown
    return Loaded(replace(config, secret=secret), loaded.sources)


def config_from_env(environ: Mapping[str, str] | None = None) -> Config:
    """A Config from ``SIDECOACH_*`` alone (no flags, no data dir secret)."""
    return load(environ).config
