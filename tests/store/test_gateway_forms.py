"""The chDB gateway speaks every request form a real clickhouse-connect client sends.

Past ~4 KB of bind parameters clickhouse-connect moves the SQL and its parameters into a
multipart/form-data body; a gateway that read that body as SQL refused it ("Multi-statements are
not allowed") and a sink batch with many new keys or a long session id was retried forever.
"""

from __future__ import annotations

from collections.abc import Iterator

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from store.gateway import ChdbGateway
from store.secret import WRITER_USER

SECRET = "forms-test-secret"


@pytest.fixture
def gateway(clickhouse_dsn: str) -> Iterator[ChdbGateway]:
    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("the gateway serves a chDB directory")
    gateway = ChdbGateway(clickhouse_dsn[len("chdb://"):], secret=SECRET).start()
    try:
        yield gateway
    finally:
        gateway.stop(close_engine=False)


def client_for(gateway: ChdbGateway, database: str, **kwargs: object) -> Client:
    return clickhouse_connect.get_client(dsn=gateway.url, database=database, username=WRITER_USER, password=SECRET,
                                         **({"compress": False} | kwargs))


def test_150_bind_parameters_go_as_a_form_and_all_arrive(gateway: ChdbGateway, database: str) -> None:
    client = client_for(gateway, database)
    params = {f"k{i:03d}": f"value-{i}-" + "v" * 20 for i in range(150)}
    sql = "SELECT [" + ", ".join(f"{{k{i:03d}:String}}" for i in range(150)) + "]"
    assert sum(len(k) + len(v) for k, v in params.items()) > 4096  # over clickhouse-connect's URL budget
    assert client.query(sql, parameters=params).result_rows == [([params[f"k{i:03d}"] for i in range(150)],)]


def test_a_5_kb_string_parameter_round_trips_exactly(gateway: ChdbGateway, database: str) -> None:
    client = client_for(gateway, database)
    session_id = "s-" + "é;'\"`$$--/*x*/\n" * 350  # 5 KB of characters a naive reader would mangle
    assert len(session_id.encode()) > 5000
    client.insert("trajectories", [[session_id, "objective", "succeeded"]],
                  column_names=["session_id", "objective", "status"])
    rows = client.query("SELECT session_id, length(session_id) FROM trajectories WHERE session_id = {sid:String}",
                        parameters={"sid": session_id}).result_rows
    assert rows == [(session_id, len(session_id.encode()))]
    assert client.command("SELECT count() FROM trajectories WHERE session_id = {sid:String}",
                          parameters={"sid": session_id}) == 1


def test_inserts_with_large_settings_are_applied(gateway: ChdbGateway, database: str) -> None:
    client = client_for(gateway, database)
    token = "tok-" + "x" * 5000  # a deduplication token as long as a 5 KB session id
    for _ in range(2):  # the second insert with the same token is deduplicated by ClickHouse
        client.insert("trajectories", [["a", "o", "succeeded"], ["b", "o", "failed"]],
                      column_names=["session_id", "objective", "status"],
                      settings={"insert_deduplication_token": token})
    assert client.command("SELECT count() FROM trajectories") == 2


def test_compressed_inserts_are_decoded(gateway: ChdbGateway, database: str) -> None:
    for codec in ("lz4", "zstd", "gzip"):
        client = client_for(gateway, database, compress=codec)
        client.insert("trajectories", [[f"{codec}-{i}", "o", "succeeded"] for i in range(100)],
                      column_names=["session_id", "objective", "status"])
        assert client.command(f"SELECT count() FROM trajectories WHERE startsWith(session_id, '{codec}-')") == 100
