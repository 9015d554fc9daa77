"""The ON CLUSTER variant of the DDL, derived from ``store/ddl`` so the two can never drift.

Each table becomes ``<name>_local`` (Replicated* engine, replicated dedup window) on every node,
fronted by a Distributed table ``<name>`` sharded by the first ORDER BY column: rows of one session
always land on one shard, so ReplacingMergeTree and FINAL deduplicate exactly as on one server.
Views are created ON CLUSTER unchanged; a column added later (``ALTER TABLE t ADD COLUMN``) is added
to both the local and the Distributed table. Server macros {cluster}, {shard}, {replica} fill the rest.
"""

from __future__ import annotations

import re

from store.clickhouse import ddl_statements

ON_CLUSTER = "ON CLUSTER '{cluster}'"
_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\s*\n", re.S)
_ENGINE = re.compile(r"ENGINE = (\w*MergeTree)(?:\(([^)]*)\))?")
_VIEW = re.compile(r"^(CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?\w+)")
_ADD_COLUMN = re.compile(r"^ALTER TABLE (\w+)(\s+ADD COLUMN\b.*)$", re.S)


def _table(sql: str) -> list[str]:
    name = _TABLE.match(sql)[1]  # type: ignore[index]
    local = f"{name}_local"
    engine = _ENGINE.search(sql)
    assert engine is not None, f"{name}: no MergeTree engine to replicate"
    args = f"'/clickhouse/tables/{{shard}}/{{database}}/{local}', '{{replica}}'"
    if engine[2]:
        args += f", {engine[2]}"
    body = _TABLE.sub(f"CREATE TABLE IF NOT EXISTS {local} {ON_CLUSTER}\n", sql, count=1)
    body = _ENGINE.sub(f"ENGINE = Replicated{engine[1]}({args})", body, count=1)
    body = body.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
    first_key = re.search(r"ORDER BY \(?(\w+)", sql)[1]  # type: ignore[index]
    front = (f"CREATE TABLE IF NOT EXISTS {name} {ON_CLUSTER} AS {local}\n"
             f"ENGINE = Distributed('{{cluster}}', currentDatabase(), '{local}', cityHash64({first_key}))")
    return [body, front]


def cluster_statements(statements: list[str] | None = None) -> list[str]:
    """Every single-server statement rewritten for a sharded, replicated cluster, in order."""
    out: list[str] = []
    for sql in ddl_statements() if statements is None else statements:
        if _TABLE.match(sql):
            out.extend(_table(sql))
        elif _VIEW.match(sql):
            out.append(_VIEW.sub(lambda m: f"{m[1]} {ON_CLUSTER}", sql, count=1))
        elif alter := _ADD_COLUMN.match(sql):
            out.extend(f"ALTER TABLE {name} {ON_CLUSTER}{alter[2]}" for name in (f"{alter[1]}_local", alter[1]))
        else:
            raise ValueError(f"no cluster form for: {sql[:60]}")
    return out
