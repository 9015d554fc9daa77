"""The running stack's gateway: its writer secret, what the secret does and does not allow, settings
in the URL, readers beside the writer, no calls from its own engine, and a quiet log."""

from __future__ import annotations

import socket
import stat
import threading
import time

import httpx
import pytest

from schemas.runtime import stack_file
from store.secret import secret_file
from tests.ingest.stack import RunningStack
from tests.store.support import READER_TIMEOUT_S, Target, http, writer_secret

pytestmark = pytest.mark.slow


def test_the_writer_secret_is_a_0600_file_of_this_run_and_never_logged(stack: RunningStack) -> None:
    path = secret_file(stack.data_dir)
    assert path.parent == stack.data_dir / "run"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = writer_secret(stack)
    assert len(secret) >= 40
    assert secret not in stack_file(stack.data_dir).read_text()
    logs = [stack.log, *(stack.data_dir / "logs").glob("*.log")]
    assert len(logs) >= 3  # up.log, worker, sink
    assert all(secret not in log.read_text(errors="replace") for log in logs)


def test_a_wrong_secret_is_refused_for_reads_and_writes(stack: RunningStack, live: Target) -> None:
    before = live.snapshot()
    for sql in ("SELECT count() FROM trajectories", "DROP TABLE steps"):
        for method in ("POST", "GET"):
            ok, out = http(stack, method, secret="not-the-secret")(sql)
            assert not ok and "(AUTHENTICATION_FAILED)" in out, out
    assert live.snapshot() == before


def test_the_secret_lets_a_post_write_and_nothing_else(stack: RunningStack, live: Target) -> None:
    post = http(stack, "POST", secret=writer_secret(stack))
    assert post("CREATE TABLE writer_probe (x Int8) ENGINE = MergeTree ORDER BY x") == (True, "")
    try:
        assert post("INSERT INTO writer_probe VALUES (1), (2)")[0]
        assert post("SELECT count() FROM writer_probe") == (True, "2\n")
        before = live.snapshot()
        # the same writes without the secret, by GET with it, or with readonly asked for: refused
        for run in (http(stack, "POST"), http(stack, "GET", secret=writer_secret(stack)),
                    http(stack, "POST", secret=writer_secret(stack), readonly="1")):
            for sql in ("INSERT INTO writer_probe VALUES (3)", "DROP TABLE writer_probe"):
                ok, out = run(sql)
                assert not ok and "(READONLY)" in out, out
        assert live.snapshot() == before
    finally:
        assert post("DROP TABLE writer_probe") == (True, "")


@pytest.mark.parametrize("setting", ["readonly=0", "readonly=2", "max_execution_time=0", "max_result_bytes=0",
                                     "max_memory_usage=0"])
def test_settings_in_the_url_cannot_lift_a_limit(stack: RunningStack, setting: str) -> None:
    name, value = setting.split("=")
    ok, out = http(stack, "POST", **{name: value})("SELECT 1")
    assert not ok and f"Cannot modify '{name}' setting in readonly mode" in out, out


def test_a_setting_a_reader_already_has_is_accepted(stack: RunningStack) -> None:
    assert http(stack, "POST", readonly="1", max_execution_time=READER_TIMEOUT_S)("SELECT 7") == (True, "7\n")


def test_the_engine_cannot_call_its_own_gateway_even_for_a_writer(stack: RunningStack, live: Target) -> None:
    """url() back to the gateway once held its only engine lock for ~80 s and ran the DROP inside."""
    before = live.snapshot()
    port = stack.info.clickhouse_url.rsplit(":", 1)[1]
    post = http(stack, "POST", secret=writer_secret(stack))
    ok, out = post(f"SELECT * FROM url('http://127.0.0.1:{port}/?query=DROP%20TABLE%20art.steps', 'LineAsString')")
    assert not ok and "403" in out, out
    assert live.snapshot() == before
    assert post("SELECT count() FROM steps")[0]  # the writer session is usable right after


def test_a_slow_reader_does_not_hold_the_writer(stack: RunningStack, live: Target) -> None:
    finished: dict[str, float] = {}

    def slow_reader() -> None:
        ok, out = http(stack, "POST")("SELECT count() FROM numbers(1000000000000)")
        assert not ok and "(TIMEOUT_EXCEEDED)" in out
        finished["reader"] = time.monotonic()

    thread = threading.Thread(target=slow_reader)
    thread.start()
    time.sleep(0.3)
    live.admin.insert("dead_letters", [["probe-topic", "slow-reader probe"]], column_names=["topic", "reason"])
    finished["writer"] = time.monotonic()
    thread.join()
    assert finished["writer"] < finished["reader"]  # with one engine lock the insert waited for the reader
    assert live.admin.command("SELECT count() FROM dead_letters WHERE reason = 'slow-reader probe'") == 1


def test_a_client_that_hangs_up_leaves_no_traceback(stack: RunningStack) -> None:
    host, port = stack.info.clickhouse_url.removeprefix("http://").split(":")
    body = b"SELECT count() FROM numbers(1000000000000)"
    for _ in range(3):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    time.sleep(float(READER_TIMEOUT_S) + 1.5)  # the queries time out and the replies meet closed sockets
    assert httpx.post(stack.info.clickhouse_url, content=b"SELECT 1").text == "1\n"  # still serving
    log = stack.log.read_text(errors="replace")
    assert "Traceback" not in log and "BrokenPipe" not in log and "ConnectionReset" not in log
