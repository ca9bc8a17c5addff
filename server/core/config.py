"""One typed, frozen configuration object, read once at start-up.

Every setting comes from (in order of precedence) a CLI flag, an environment
variable, or the named default below; ``server/core/settings.py`` reads and
checks them (nothing else in the server reads the environment).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from server.core.errors import ConfigError

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8080
DEFAULT_DATA_DIR = "data"
DEFAULT_RETENTION_DAYS = 30.0
SECRET_FILE_NAME = "secret"
#: what ``iceTransportPolicy`` clients may be told to use
ICE_TRANSPORT_POLICIES = ("all", "relay")


@dataclass(frozen=True)
class Limits:
    """Explicit limits, each with a named default, enforced at the edges."""

    #: largest socket.io message accepted (bytes, after JSON encoding)
    max_message_bytes: int = 64 * 1024
    #: largest SDP accepted inside a message (bytes)
    max_sdp_bytes: int = 48 * 1024
    #: invite tokens expire after this many seconds
    token_ttl_s: int = 7 * 24 * 3600
    #: at most one keyframe request upstream per producer per this interval
    keyframe_min_interval_ms: int = 500
    #: RTP packets kept per producer to answer NACKs
    packet_cache_size: int = 1024
    #: participants in one session
    max_participants: int = 50
    #: producers (tracks) one participant may publish
    max_producers_per_participant: int = 6
    #: signaling messages per second per connection (sustained) and burst
    messages_per_second: float = 30.0
    message_burst: int = 60
    #: a negotiation not answered within this many seconds is abandoned
    negotiation_timeout_s: float = 20.0
    #: a live session everyone has left ends when nobody rejoins within this
    departure_timeout_s: float = 600.0
    #: a session nobody ever joined ends this long after its scheduled start
    #: (or its creation, when unscheduled): its invites have expired by then
    session_expiry_s: float = 7 * 24 * 3600.0
    #: recorded media waiting for the disk, per recording; past this the
    #: recording stops with a visible error instead of filling the memory
    recording_backlog_bytes: int = 64 * 1024 * 1024
    #: a SIGTERM'd server finalizes recordings and exits within this
    drain_timeout_s: float = 30.0
    #: sockets that have not joined a session (no valid invite yet), per
    #: remote address and in total; more are refused
    max_unauthenticated_per_address: int = 20
    max_unauthenticated_sockets: int = 200
    #: a socket that has not joined within this many seconds is closed
    unauthenticated_timeout_s: float = 15.0
    #: a socket the server closed whose client has not closed its websocket
    #: within this many seconds is cut (its TCP connection closed)
    socket_close_grace_s: float = 1.0
    #: live seats one coach or observer invite holds; a further join with it
    #: replaces its oldest seat (a teacher invite holds one, always replaced)
    seats_per_invite: int = 3
    #: WHIP publishers and WHEP viewers (HTTP media resources) in one lesson
    max_whip_resources_per_session: int = 4
    #: sessions one admin token may create per minute (admin API)
    sessions_per_admin_token_per_minute: int = 30
    #: warning lines about malformed client input per minute; the rest are
    #: only counted (in /metrics)
    warnings_per_minute: int = 60
    # -- several nodes (with a Redis URL) ---------------------------------
    #: a node writes its heartbeat (and refreshes its sessions' directory
    #: entries) this often
    node_heartbeat_interval_s: float = 1.0
    #: a node whose heartbeat is older than this is dead: its sessions move
    node_ttl_s: float = 5.0
    #: a node using more CPU than this (% of one core, over ~10 s) gets no
    #: new sessions while another node is under it
    node_busy_cpu_pct: float = 85.0
    #: a frame between nodes (a relayed socket.io packet, a request) not
    #: answered within this is given up
    node_request_timeout_s: float = 10.0
    #: opening a link to another node (its handshake included) is given up
    #: after this; a node whose link broke and that does not answer within
    #: this is taken for dead at once (its sessions move)
    node_connect_timeout_s: float = 2.0
    #: frames waiting to go to one other node; past this the link is closed
    #: (the participants relayed over it reconnect) instead of growing
    node_link_queue_frames: int = 10_000
    #: a recorded camera, mic or whisper track that was flowing and gets no
    #: packet for longer than this is marked as a ``media-gap`` on the
    #: recording's timeline (a network cut, a frozen publisher)
    media_gap_ms: int = 1000
    #: while a lesson is recorded, the longest a recorded camera goes
    #: without a keyframe (s; it is asked 1 s before): a clip starts within
    #: this of where it was asked to, and a seek in review lands as fast
    recording_keyframe_interval_s: float = 2.0
    #: the most a participant may send per video track (kbit/s): in the
    #: offer (b=AS/TIAS) and in the REMB the server sends the publisher
    max_video_bitrate_kbps: int = 2500
    # -- people: sign-in --------------------------------------------------
    #: wrong passwords in a row that lock a local account ...
    login_failures_before_lockout: int = 5
    #: ... for this many seconds (a right password does not open it sooner)
    login_lockout_s: float = 900.0
    #: sign-in attempts (password or OIDC) per minute from one address
    logins_per_minute_per_address: int = 20
    #: a login session ends this long after its sign-in ...
    login_session_ttl_s: float = 12 * 3600.0
    #: ... or after this long unused
    login_session_idle_s: float = 4 * 3600.0
    #: an OIDC sign-in must come back from the provider within this
    oidc_state_ttl_s: float = 600.0
    #: an ID token's clocks may differ from ours by this much
    oidc_leeway_s: int = 60
    #: lessons one coach may schedule per minute
    lessons_per_person_per_minute: int = 30
    #: a node checks this often that the login sessions of the persons in
    #: its lessons are alive (one ended on another node: sign-out, disabled)
    login_recheck_s: float = 15.0


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_client(self) -> dict[str, Any]:
        d: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            d["username"] = self.username
        if self.credential is not None:
            d["credential"] = self.credential
        return d


@dataclass(frozen=True)
class Config:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    #: HMAC key for invite tokens; generated and kept in data_dir when unset
    secret: str = ""
    #: base URL printed in invite links; derived from host/port when unset
    public_url: str = ""
    #: local addresses the server gathers ICE candidates on (empty: all
    #: non-loopback host addresses, aioice's default). Tests use 127.0.0.1.
    ice_listen_ips: tuple[str, ...] = ()
    #: address announced in ICE candidates instead of the listen address
    #: (a server behind NAT announces its public address)
    ice_announced_ip: str | None = None
    #: STUN/TURN servers handed to clients as they are (static credentials)
    ice_servers: tuple[IceServer, ...] = ()
    #: shared secret of a TURN server using the TURN REST scheme (coturn's
    #: ``use-auth-secret``): each join gets its own expiring credential for
    #: ``turn_urls`` (server/turn.py). Never logged, never sent to a page.
    turn_secret: str = field(default="", repr=False)
    turn_urls: tuple[str, ...] = ()
    #: ``iceTransportPolicy`` for the pages: "all", or "relay" to send all
    #: media through TURN (sites whose firewalls need it; testing)
    ice_transport_policy: str = "all"
    #: PEM certificate chain and private key: serve HTTPS
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: serve HTTPS with a certificate generated and kept in ``data_dir/tls``
    #: (trying it out on a LAN; NOT for production)
    self_signed: bool = False
    #: trying it out on a school LAN: serve HTTPS with the self-signed
    #: certificate on this machine's LAN address(es) and plain HTTP on
    #: localhost, both on ``port`` (``--lan``; ``--demo`` turns it on when
    #: no host, TLS or public URL is set). NOT for production.
    lan: bool = False
    #: also listen for plain HTTP on this port and redirect it to HTTPS
    http_redirect_port: int | None = None
    #: Redis URL for multi-node deployments; None = embedded single node.
    #: ``rediss://`` is TLS; ``redis[s]://[USER]:PASSWORD@host:port/db``
    #: authenticates (requirepass or an ACL user). Never logged.
    redis_url: str | None = field(default=None, repr=False)
    #: PEM CA certificate(s) that sign Redis's TLS certificate (rediss://);
    #: unset: the system's CAs
    redis_tls_ca: Path | None = None
    #: where sessions are kept: "sqlite" (DATA_DIR; shared by the nodes of
    #: one box) or "redis" (nodes on several boxes)
    store: str = "sqlite"
    #: this node's name in a deployment (stable across restarts); "" =
    #: hostname-port
    node_id: str = ""
    #: how other nodes reach this one (relayed signaling, recordings); "" =
    #: http://127.0.0.1:PORT (nodes on one box)
    node_url: str = ""
    #: SIGTERM drains: no new sessions, exit when the sessions end or after
    #: this many seconds (0 = finalize and exit at once); a second SIGTERM
    #: exits at once
    drain_deadline_s: float = 0.0
    log_level: str = "INFO"
    #: "text" or "json" (one object per line)
    log_format: str = "text"
    #: recordings older than this many days are deleted
    retention_days: float = DEFAULT_RETENTION_DAYS
    #: how often the retention sweep runs
    retention_interval_s: float = 3600.0
    #: how often ended/expired/abandoned sessions are looked for
    lifecycle_interval_s: float = 15.0
    #: the database several boxes share (``postgresql://user:pw@host/db``);
    #: "" = SQLite in ``data_dir``. Never logged with its password.
    database_url: str = field(default="", repr=False)
    #: the district's OpenID Connect provider (its issuer URL); "" = local
    #: passwords only
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    #: the sign-in button's words ("Sign in with Google")
    oidc_label: str = "Sign in with your district account"
    limits: Limits = field(default_factory=Limits)

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def tls(self) -> bool:
        """Whether the server listens with HTTPS."""
        return self.tls_cert is not None or self.self_signed

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


#: how each checked setting is named to the admin: env var (and flag)
_NAMES = {
    "tls_cert": "SIDECOACH_TLS_CERT (--tls-cert)",
    "tls_key": "SIDECOACH_TLS_KEY (--tls-key)",
    "self_signed": "SIDECOACH_SELF_SIGNED (--self-signed)",
    "http_redirect_port": "SIDECOACH_HTTP_REDIRECT_PORT (--http-redirect-port)",
    "turn_secret": "SIDECOACH_TURN_SECRET",
    "turn_urls": "SIDECOACH_TURN_URLS",
    "ice_transport_policy": "SIDECOACH_ICE_TRANSPORT_POLICY",
    "public_url": "SIDECOACH_PUBLIC_URL (--public-url)",
    "store": "SIDECOACH_STORE",
    "redis_url": "SIDECOACH_REDIS_URL (--redis-url)",
    "redis_tls_ca": "SIDECOACH_REDIS_TLS_CA",
    "secret": "SIDECOACH_SECRET",
    "node_url": "SIDECOACH_NODE_URL (--node-url)",
    "log_format": "SIDECOACH_LOG_FORMAT (--log-format)",
    "drain_deadline_s": "SIDECOACH_DRAIN_DEADLINE_S (--drain-deadline)",
    "database_url": "SIDECOACH_DATABASE_URL",
    "oidc_issuer": "SIDECOACH_OIDC_ISSUER",
    "oidc_client_id": "SIDECOACH_OIDC_CLIENT_ID",
}

#: where sessions may be kept
STORES = ("sqlite", "redis")
LOG_FORMATS = ("text", "json")


def node_id_of(config: Config) -> str:
    """This node's name: configured, else hostname-port."""
    return config.node_id or f"{socket.gethostname()}-{config.port}"


def check_cluster_settings(config: Config) -> None:
    """Refuse contradictory multi-node and logging settings, naming the variable."""
    n = _NAMES
    if config.store not in STORES:
        raise ConfigError(f"{n['store']} has value {config.store!r}: expected sqlite or redis")
    if config.store == "redis" and not config.redis_url:
        raise ConfigError(f"{n['store']} is 'redis' but {n['redis_url']} is not set")
    if config.store == "redis" and not config.database_url:
        raise ConfigError(
            f"{n['store']}=redis is retired: several boxes share one PostgreSQL database. "
            f"Set {n['database_url']}=postgresql://user:password@host/db (the sessions in "
            "Redis are copied into it at the first start), then drop SIDECOACH_STORE"
        )
    check_people_settings(config)
    if config.redis_url and not config.redis_url.startswith(("redis://", "rediss://", "unix://")):
        shown = config.redis_url.split("@")[-1]  # never a password in an error
        raise ConfigError(
            f"{n['redis_url']} has value {shown!r}: expected redis://host:port/db"
            " (rediss:// for TLS)"
        )
    if config.redis_tls_ca is not None:
        if not (config.redis_url or "").startswith("rediss://"):
            raise ConfigError(f"{n['redis_tls_ca']} is set but {n['redis_url']} is not rediss://")
        if not config.redis_tls_ca.is_file():
            raise ConfigError(
                f"{n['redis_tls_ca']} has value {str(config.redis_tls_ca)!r}: no such file"
            )
    if config.node_url:
        parts = urlsplit(config.node_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{n['node_url']} has value {config.node_url!r}: expected http(s)://host:port"
            )
    if config.log_format not in LOG_FORMATS:
        raise ConfigError(f"{n['log_format']} has value {config.log_format!r}: text or json")
    if config.drain_deadline_s < 0:
        raise ConfigError(f"{n['drain_deadline_s']} must be 0 or more seconds")


def check_people_settings(config: Config) -> None:
    """Refuse a half-configured OIDC provider, naming the variable."""
    n = _NAMES
    if config.oidc_issuer:
        parts = urlsplit(config.oidc_issuer)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme == "http" and loopback)
        ):
            raise ConfigError(
                f"{n['oidc_issuer']} has value {config.oidc_issuer!r}: expected https://host/..."
            )
        if not config.oidc_client_id:
            raise ConfigError(f"{n['oidc_issuer']} is set but {n['oidc_client_id']} is not")


def check_network_settings(config: Config) -> None:
    """Refuse contradictory or malformed HTTPS/TURN settings with a message
    naming the variable; the files themselves are read by server/tls.py."""
    n = _NAMES
    if (config.tls_cert is None) != (config.tls_key is None):
        given, missing = ("tls_cert", "tls_key")
        if config.tls_cert is None:
            given, missing = missing, given
        raise ConfigError(f"{n[given]} is set but {n[missing]} is not: HTTPS needs both")
    if config.lan and (config.tls_cert is not None or config.host not in ("0.0.0.0", "::", "")):
        raise ConfigError(
            "SIDECOACH_LAN (--lan) listens on the LAN address and localhost with the self-signed"
            f" certificate: leave {n['tls_cert']} and SIDECOACH_HOST (--host) unset"
        )
    if config.self_signed and config.tls_cert is not None:
        raise ConfigError(f"{n['self_signed']} and {n['tls_cert']} exclude each other")
    for name in ("tls_cert", "tls_key"):
        path = getattr(config, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"{n[name]} has value {str(path)!r}: no such file")
    if config.http_redirect_port is not None:
        if not config.tls:
            raise ConfigError(
                f"{n['http_redirect_port']} redirects to HTTPS: set {n['tls_cert']} and "
                f"{n['tls_key']}, or {n['self_signed']}"
            )
        if not 0 < config.http_redirect_port < 65536 or config.http_redirect_port == config.port:
            raise ConfigError(
                f"{n['http_redirect_port']} has value {config.http_redirect_port}: expected "
                "a free port 1..65535 other than the HTTPS port"
            )
    if config.ice_transport_policy not in ICE_TRANSPORT_POLICIES:
        raise ConfigError(
            f"{n['ice_transport_policy']} has value {config.ice_transport_policy!r}: "
            f"expected one of {', '.join(ICE_TRANSPORT_POLICIES)}"
        )
    if config.turn_secret and not config.turn_urls:
        raise ConfigError(f"{n['turn_secret']} is set but {n['turn_urls']} is empty")
    if config.turn_urls and not config.turn_secret:
        raise ConfigError(f"{n['turn_urls']} is set but {n['turn_secret']} is not")
    for url in config.turn_urls:
        if not url.startswith(("turn:", "turns:")):
            raise ConfigError(
                f"{n['turn_urls']} has value {url!r}: each URL starts with turn: or turns:"
            )
    if config.ice_transport_policy == "relay" and not (
        config.turn_urls or any(u.startswith("turn") for s in config.ice_servers for u in s.urls)
    ):
        raise ConfigError(
            f"{n['ice_transport_policy']} is 'relay' but no TURN server is configured "
            f"({n['turn_urls']} or SIDECOACH_ICE_SERVERS)"
        )
    if config.public_url:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{n['public_url']} has value {config.public_url!r}: expected http(s)://host[:port]"
            )
