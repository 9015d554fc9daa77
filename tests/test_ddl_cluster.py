"""store/ddl_cluster mirrors store/ddl: same columns and keys, replicated engines, Distributed fronts.

No cluster runs here (ON CLUSTER needs Keeper and remote servers), so every statement goes through
ClickHouse's own parser (``formatQuery``) and the structure is compared with the single-server DDL.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from store.clickhouse import connect

STORE = Path(__file__).resolve().parents[1] / "store"
SINGLE, CLUSTER = STORE / "ddl", STORE / "ddl_cluster"


def statements(path: Path) -> list[str]:
    text = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def columns(sql: str) -> str:
    return sql[sql.index("(\n"):sql.index("\n)") + 2]


def table_files() -> list[str]:
    return sorted(p.name for p in SINGLE.glob("*.sql") if "CREATE TABLE" in p.read_text())


def test_every_file_has_a_cluster_variant() -> None:
    assert sorted(p.name for p in CLUSTER.glob("*.sql")) == sorted(p.name for p in SINGLE.glob("*.sql"))


@pytest.mark.parametrize("name", table_files())
def test_tables_are_replicated_and_distributed_with_the_same_columns(name: str) -> None:
    [single] = statements(SINGLE / name)
    local, distributed = statements(CLUSTER / name)
    table = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", single)[1]  # type: ignore[index]
    assert f"CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER '{{cluster}}'" in local
    assert columns(local) == columns(single)
    order = re.search(r"ORDER BY .*", single)[0]  # type: ignore[index]
    assert order in local
    assert f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'" \
        in local
    version = re.search(r"ReplacingMergeTree\((\w+)\)", single)
    assert (f", {version[1]})" in local) if version else ("'{replica}')" in local)
    if "non_replicated_deduplication_window" in single:
        assert "replicated_deduplication_window = 10000" in local
    first_key = re.search(r"ORDER BY \(?(\w+)", single)[1]  # type: ignore[index]
    assert distributed == (f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER '{{cluster}}' AS {table}_local\n"
                           f"ENGINE = Distributed('{{cluster}}', currentDatabase(), '{table}_local', "
                           f"cityHash64({first_key}))")


def test_views_are_the_same_on_cluster() -> None:
    single, cluster = statements(SINGLE / "030_views.sql"), statements(CLUSTER / "030_views.sql")
    assert [s.replace(" ON CLUSTER '{cluster}'", "") for s in cluster] == single
    assert all(" ON CLUSTER '{cluster}' AS" in s for s in cluster)


def test_clickhouse_parses_every_statement(clickhouse_dsn: str) -> None:
    client = connect(clickhouse_dsn)
    for path in sorted(CLUSTER.glob("*.sql")):
        for sql in statements(path):
            formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": sql}).result_rows[0][0]
            assert "ON CLUSTER `{cluster}`" in formatted, path.name


def test_init_applies_exactly_these_statements() -> None:
    from stack.topics_cli import cluster_statements

    assert cluster_statements() == [s for p in sorted(CLUSTER.glob("*.sql")) for s in statements(p)]
