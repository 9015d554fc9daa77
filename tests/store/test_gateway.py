"""The gateway in this process, on the test session's chDB directory: its secret file, a
readers-only gateway, sessions replaced after a failure, body limits and a quiet hang-up."""

from __future__ import annotations

import logging
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import httpx
import pytest

from store.gateway import READER_BODY_LIMIT, ChdbGateway
from store.secret import WRITER_USER, load

SECRET = "unit-test-secret"


@pytest.fixture
def path(clickhouse_dsn: str) -> str:
    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("the gateway serves a chDB directory")
    return clickhouse_dsn[len("chdb://"):]


@pytest.fixture
def gateway(path: str) -> Iterator[ChdbGateway]:
    gateway = ChdbGateway(path, secret=SECRET, reader_timeout_s=2).start()
    yield gateway
    gateway.stop(close_engine=False)


def test_the_secret_card_is_0600_new_per_gateway_and_withdrawn_at_stop(path: str, tmp_path: Path) -> None:
    card = tmp_path / "run" / "gateway-secret.json"
    first = ChdbGateway(path, card=card).start()
    try:
        assert stat.S_IMODE(card.stat().st_mode) == 0o600
        loaded = load(card)
        assert loaded is not None and (loaded.url, loaded.secret) == (first.url, first.secret)
        second = ChdbGateway(path, card=tmp_path / "other.json")
        assert second.secret and second.secret != first.secret
        second.stop(close_engine=False)
    finally:
        first.stop(close_engine=False)
    assert not card.exists()


def test_a_readers_only_gateway_has_no_writer_and_refuses_credentials(path: str, database: str) -> None:
    gateway = ChdbGateway(path).start()
    try:
        assert gateway.secret is None and gateway._conn is None
        reply = httpx.post(gateway.url, params={"database": database}, content=b"SELECT count() FROM steps",
                           auth=(WRITER_USER, "anything"))
        assert reply.status_code == 403 and "(AUTHENTICATION_FAILED)" in reply.text
        reply = httpx.post(gateway.url, params={"database": database}, content=b"TRUNCATE TABLE steps")
        assert reply.status_code == 500 and "not TruncateQuery. (READONLY)" in reply.text
        reply = httpx.post(gateway.url, params={"database": database}, content=b"SELECT count() FROM steps")
        assert reply.text == "0\n"
    finally:
        gateway.stop(close_engine=False)


def test_a_failed_query_never_hands_its_output_to_the_next(gateway: ChdbGateway, database: str) -> None:
    """chDB returns a failed query's partial output as the next query's result on that session."""
    reader = clickhouse_connect.get_client(dsn=gateway.url, database=database, compress=False)
    writer = clickhouse_connect.get_client(dsn=gateway.url, database=database, compress=False,
                                           username=WRITER_USER, password=SECRET)
    for client in (reader, writer):
        for _ in range(5):  # more failures than reader sessions
            with pytest.raises(Exception, match="boom"):  # fails after 100,000 rows of output
                client.query("SELECT throwIf(number = 100000, 'boom'), repeat('z', 100) FROM numbers(200000)")
            assert client.query("SELECT 42").result_rows == [(42,)]


def test_a_reader_may_not_send_a_large_body(gateway: ChdbGateway, database: str) -> None:
    body = b"SELECT '" + b"x" * READER_BODY_LIMIT + b"'"
    reply = httpx.post(gateway.url, params={"database": database}, content=body)
    assert reply.status_code == 413 and "(TOO_MANY_BYTES)" in reply.text


def test_identifiers_cannot_smuggle_an_outfile_past_the_tree_check(gateway: ChdbGateway, database: str,
                                                                    tmp_path: Path) -> None:
    """Backticked names reach EXPLAIN AST unescaped and can add lines to it; they can never hide one."""
    out = tmp_path / "out.txt"
    for alias in ("a\nSelectWithUnionQuery", "a\n ExpressionList", "a\nFunction numbers", "a) (children 1)\n"):
        sql = f"SELECT 1 AS `{alias}` INTO OUTFILE '{out}'"
        reply = httpx.post(gateway.url, params={"database": database}, content=sql.encode())
        assert reply.status_code == 500 and "(READONLY)" in reply.text, reply.text
    assert not out.exists()


def test_a_client_that_hangs_up_is_one_debug_line(gateway: ChdbGateway, database: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    body = b"SELECT count() FROM numbers(1000000000000)"
    with caplog.at_level(logging.DEBUG, logger="store.gateway"):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /?database=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                         % (database.encode(), len(body), body))
            sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("went away" in r.getMessage() for r in caplog.records):
            time.sleep(0.1)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.DEBUG
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_reader_size_limits(path: str, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The result limit, the memory limit on one huge block, and the output cap, one at a time."""
    from store import readers

    def refusal(limits: dict[str, int], output_cap: int, sql: str) -> str:
        monkeypatch.setattr(readers, "READER_LIMITS", limits)
        monkeypatch.setattr(readers, "MAX_OUTPUT_BYTES", output_cap)
        sessions = readers.ReaderSessions(path, size=1, timeout_s=60)
        try:
            with pytest.raises(Exception) as caught:
                sessions.query(sql, {}, database)
            assert sessions.query("SELECT 1", {}, database)[1] == b"1\n"  # the session was replaced
            return str(caught.value)
        finally:
            sessions.close()

    assert "Limit for result exceeded, max bytes: 976.56 KiB" in refusal(
        {"max_result_bytes": 1_000_000}, 1 << 30, "SELECT toString(number) FROM numbers(10000000)")
    assert "(MEMORY_LIMIT_EXCEEDED)" in refusal(
        {"max_memory_usage": 100_000_000}, 1 << 30, "SELECT repeat('x', 1000000) FROM numbers(200)")
    assert "at most 300000 for a reader. (TOO_MANY_ROWS_OR_BYTES)" in refusal(
        {}, 300_000, "SELECT repeat('x', 1000) FROM numbers(400)")
