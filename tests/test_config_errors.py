"""Configuration that refuses mistakes in one line: the whole table of bad
settings an admin can make, each through the real CLI (a subprocess), each
one line naming the variable or flag, exit code 2, and nothing started;
``check-config``; a Redis that never answered."""

from __future__ import annotations

import logging
import socket
import subprocess
from pathlib import Path

import pytest

from server.cluster.errors import RedisUnavailable
from server.cluster.redis_conn import RedisConn
from server.core.settings import load
from testkit.procs import free_port, sidecoach_cmd, sidecoach_env

#: an address of no machine here (TEST-NET-2)
NOT_MINE = "198.51.100.77"
SECRET = "a-real-secret-of-more-than-32-bytes-" + "z" * 12

BAD = [
    # (environment, flags, the name the line must start with)
    ({"SIDECOACH_PORT": "abc"}, [], 'SIDECOACH_PORT: "abc" is not a port number'),
    ({}, ["--port", "abc"], '--port: "abc" is not a port number'),
    ({"SIDECOACH_PORT": "70000"}, [], "SIDECOACH_PORT:"),
    ({"SIDECOACH_LIMIT_MAX_PARTICIPANTS": "-1"}, [], "SIDECOACH_LIMIT_MAX_PARTICIPANTS:"),
    ({"SIDECOACH_LIMIT_MAX_PARTICIPANTS": "0"}, [], "SIDECOACH_LIMIT_MAX_PARTICIPANTS:"),
    ({"SIDECOACH_LIMIT_MAX_PARTICIPANTS": "many"}, [], "SIDECOACH_LIMIT_MAX_PARTICIPANTS:"),
    ({"SIDECOACH_LIMIT_MESSAGES_PER_SECOND": "abc"}, [], "SIDECOACH_LIMIT_MESSAGES_PER_SECOND:"),
    ({"SIDECOACH_LIMIT_DRAIN_TIMEOUT_S": "-3"}, [], "SIDECOACH_LIMIT_DRAIN_TIMEOUT_S:"),
    ({"SIDECOACH_LIMIT_MAX_PARTICIPANT": "5"}, [], "SIDECOACH_LIMIT_MAX_PARTICIPANT:"),
    ({"SIDECOACH_LOG_LEVEL": "loud"}, [], 'SIDECOACH_LOG_LEVEL: "loud" is not a log level'),
    ({}, ["--log-level", "chatty"], "--log-level:"),
    ({"SIDECOACH_LOG_FORMAT": "xml"}, [], "SIDECOACH_LOG_FORMAT:"),
    ({"SIDECOACH_SECRET": "too-short"}, [], "SIDECOACH_SECRET: 9 bytes, at least 32"),
    ({"SIDECOACH_ICE_LISTEN_IPS": NOT_MINE}, [], "SIDECOACH_ICE_LISTEN_IPS:"),
    ({}, ["--ice-listen-ips", "127.0.0.1,nonsense"], "--ice-listen-ips:"),
    ({"SIDECOACH_ICE_ANNOUNCED_IP": "example"}, [], "SIDECOACH_ICE_ANNOUNCED_IP:"),
    ({"SIDECOACH_ICE_SERVERS": "http://stun.example"}, [], "SIDECOACH_ICE_SERVERS:"),
    ({"SIDECOACH_RETENTION_DAYS": "0"}, [], "SIDECOACH_RETENTION_DAYS:"),
    ({"SIDECOACH_DRAIN_DEADLINE_S": "-5"}, [], "SIDECOACH_DRAIN_DEADLINE_S:"),
    ({"SIDECOACH_SELF_SIGNED": "maybe"}, [], "SIDECOACH_SELF_SIGNED:"),
    ({"SIDECOACH_HTTP_REDIRECT_PORT": "eighty"}, [], "SIDECOACH_HTTP_REDIRECT_PORT:"),
    ({"SIDECOACH_STORE": "mysql"}, [], "SIDECOACH_STORE:"),
    ({"SIDECOACH_PUBLIC_URL": "coach.school.example"}, [], "SIDECOACH_PUBLIC_URL"),
    ({"SIDECOACH_ICE_TRANSPORT_POLICY": "tcp"}, [], "SIDECOACH_ICE_TRANSPORT_POLICY:"),
    ({"SIDECOACH_TLS_CERT": "/etc/hostname"}, [], "SIDECOACH_TLS_CERT (--tls-cert)"),
    ({}, ["--tls-cert", "/etc/hostname", "--tls-key", "/etc/hostname"], "SIDECOACH_TLS_CERT"),
    ({}, ["--host", NOT_MINE], "SIDECOACH_HOST (--host):"),
    ({"SIDECOACH_TURN_SECRET": SECRET}, [], "SIDECOACH_TURN_SECRET"),
    ({"SIDECOACH_LAN": "1"}, [], "SIDECOACH_LAN (--lan)"),  # with the test's --host
]


def sidecoach(
    tmp_path: Path, env: dict[str, str], *args: str, command: str = "serve"
) -> subprocess.CompletedProcess[str]:
    settings = {"SIDECOACH_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        sidecoach_cmd(command, *args),
        env=sidecoach_env(**settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(proc: subprocess.CompletedProcess[str], named: str) -> None:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"sidecoach: configuration error: {named}"), lines[0]
    assert "Traceback" not in proc.stderr and "Listening" not in proc.stdout


@pytest.mark.parametrize(("env", "flags", "named"), BAD)
def test_a_bad_setting_is_one_line_naming_it_exit_2(
    tmp_path: Path, env: dict[str, str], flags: list[str], named: str
) -> None:
    proc = sidecoach(tmp_path, env, "--host", "127.0.0.1", "--port", str(free_port()), *flags)
    if "--host" in flags or "--port" in flags:  # the test's own must not hide the one asked for
        proc = sidecoach(tmp_path, env, *flags)
    assert_refused(proc, named)
    # nothing was started: no session store was made
    assert not (tmp_path / "data" / "sidecoach.sqlite3").exists()
    assert "too-short" not in proc.stderr  # a secret is never echoed, even a bad one


def test_a_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = sidecoach(tmp_path, {}, "--host", "127.0.0.1", "--port", str(port))
    assert_refused(proc, f"SIDECOACH_PORT (--port): port {port} on 127.0.0.1 is already in use")


def test_a_short_secret_kept_in_the_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret").write_text("short\n")
    proc = sidecoach(tmp_path, {}, "list", command="session")
    assert_refused(proc, f"SIDECOACH_SECRET (kept in {tmp_path / 'data' / 'secret'}): 5 bytes")


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    assert_refused(sidecoach(tmp_path, {}), "SIDECOACH_DATA_DIR (--data-dir):")


def test_check_config_shows_sources_redacts_secrets_and_writes_nothing(tmp_path: Path) -> None:
    turn_secret = "turn-secret-never-shown-" + "t" * 20
    proc = sidecoach(
        tmp_path,
        {
            "SIDECOACH_PORT": "8443",
            "SIDECOACH_SECRET": SECRET,
            "SIDECOACH_TURN_SECRET": turn_secret,
            "SIDECOACH_TURN_URLS": "turn:turn.school.example:3478",
            "SIDECOACH_REDIS_URL": "redis://:redis-password@127.0.0.1:6379/0",
            "SIDECOACH_LIMIT_MAX_PARTICIPANTS": "12",
        },
        "--port",
        "9443",
        command="check-config",
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert rows["SIDECOACH_PORT"].endswith("9443  [flag --port]")  # the flag wins over env
    assert rows["SIDECOACH_HOST"].endswith("0.0.0.0  [default]")
    assert rows["SIDECOACH_LIMIT_MAX_PARTICIPANTS"].endswith("12  [env]")
    assert rows["SIDECOACH_LIMIT_NODE_TTL_S"].endswith("5.0  [default]")
    assert "(redacted, 48 bytes)  [env]" in rows["SIDECOACH_SECRET"]
    assert "(redacted" in rows["SIDECOACH_TURN_SECRET"]
    assert "redis://:***@127.0.0.1:6379/0" in rows["SIDECOACH_REDIS_URL"]
    out = proc.stdout + proc.stderr
    for secret in (SECRET, turn_secret, "redis-password"):
        assert secret not in out
    assert not (tmp_path / "data").exists()
    # the data dir's secret is shown as where it comes from
    proc = sidecoach(tmp_path, {}, command="check-config")
    assert proc.returncode == 0, proc.stderr
    assert f"[data dir {tmp_path / 'data' / 'secret'}]" in proc.stdout
    # and check-config refuses what serve would refuse, the same way
    assert_refused(
        sidecoach(tmp_path, {"SIDECOACH_PORT": "abc"}, command="check-config"), "SIDECOACH_PORT"
    )


def test_env_and_flags_parse_to_the_same_config() -> None:
    env = {"SIDECOACH_PORT": "9000", "SIDECOACH_LOG_LEVEL": "debug", "SIDECOACH_LAN": "yes"}
    loaded = load(env, {"--host": "127.0.0.1", "--drain-deadline": "2.5"})
    config = loaded.config
    assert (config.port, config.log_level, config.lan) == (9000, "DEBUG", True)
    assert (config.host, config.drain_deadline_s) == ("127.0.0.1", 2.5)
    assert loaded.sources["SIDECOACH_HOST (--host)"] == ("flag --host", "127.0.0.1")


async def test_a_redis_that_never_answered_is_never_said_to_answer_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = RedisConn(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens there
    caplog.set_level(logging.INFO, logger="server.cluster.redis_conn")

    async def ping(client: object) -> None:
        await client.ping()  # type: ignore[attr-defined]

    async def nothing(client: object) -> int:  # e.g. an empty pipeline at shutdown
        return 0

    with pytest.raises(RedisUnavailable):
        await conn.run(ping)
    assert await conn.run(nothing) == 0
    await conn.close()
    assert not conn.up
    assert "answering again" not in caplog.text
    assert "is not answering" in caplog.text
