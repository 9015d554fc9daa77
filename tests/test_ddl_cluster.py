"""The cluster DDL is derived from store/ddl: same columns and keys, replicated engines, Distributed fronts.

No cluster runs here (ON CLUSTER needs Keeper and remote servers), so every statement goes through
ClickHouse's own parser (``formatQuery``) and the structure is compared with the single-server DDL.
"""

from __future__ import annotations

import re

import pytest

from store.clickhouse import connect, ddl_statements
from store.cluster import cluster_statements

TABLES = [s for s in ddl_statements() if s.startswith("CREATE TABLE")]
VIEWS = [s for s in ddl_statements() if "VIEW" in s.split("\n", 1)[0]]
ALTERS = [s for s in ddl_statements() if s.startswith("ALTER TABLE")]


def columns(sql: str) -> str:
    return sql[sql.index("(\n"):sql.index("\n)") + 2]


@pytest.mark.parametrize("single", TABLES, ids=lambda s: re.search(r"EXISTS (\w+)", s)[1])  # type: ignore[index]
def test_tables_are_replicated_and_distributed_with_the_same_columns(single: str) -> None:
    local, distributed = cluster_statements([single])
    table = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", single)[1]  # type: ignore[index]
    assert local.startswith(f"CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER '{{cluster}}'")
    assert columns(local) == columns(single)
    assert re.search(r"ORDER BY .*", single)[0] in local  # type: ignore[index]
    assert f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'" \
        in local
    version = re.search(r"ReplacingMergeTree\((\w+)\)", single)
    assert (f", {version[1]})" in local) if version else ("'{replica}')" in local)
    assert "non_replicated_deduplication_window" not in local
    if "non_replicated_deduplication_window" in single:
        assert "replicated_deduplication_window = 10000" in local
    first_key = re.search(r"ORDER BY \(?(\w+)", single)[1]  # type: ignore[index]
    assert distributed == (f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER '{{cluster}}' AS {table}_local\n"
                           f"ENGINE = Distributed('{{cluster}}', currentDatabase(), '{table}_local', "
                           f"cityHash64({first_key}))")


def test_views_are_the_same_on_cluster() -> None:
    cluster = cluster_statements(VIEWS)
    assert VIEWS and [s.replace(" ON CLUSTER '{cluster}'", "") for s in cluster] == VIEWS
    assert all(" ON CLUSTER '{cluster}' AS" in s for s in cluster)


def test_every_statement_has_a_cluster_form() -> None:
    assert len(cluster_statements()) == 2 * len(TABLES) + len(VIEWS) + 2 * len(ALTERS)
    with pytest.raises(ValueError, match="no cluster form for: DROP TABLE x"):
        cluster_statements(["DROP TABLE x"])


def test_added_columns_reach_the_local_and_the_distributed_table() -> None:
    assert ALTERS, "store/ddl adds at least one column after the fact (steps.completions)"
    for single in ALTERS:
        table = single.split()[2]
        local, front = cluster_statements([single])
        rest = single.removeprefix(f"ALTER TABLE {table}")
        assert (local, front) == (f"ALTER TABLE {table}_local ON CLUSTER '{{cluster}}'{rest}",
                                  f"ALTER TABLE {table} ON CLUSTER '{{cluster}}'{rest}")


def test_clickhouse_parses_every_statement(clickhouse_dsn: str) -> None:
    client = connect(clickhouse_dsn)
    for sql in cluster_statements():
        formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": sql}).result_rows[0][0]
        assert "ON CLUSTER `{cluster}`" in formatted, sql[:80]
