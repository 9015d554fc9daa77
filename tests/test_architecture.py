"""The design card's boundaries, checked: streams/ never imports consumers/ or trainer/ (nor the
reverse), shared contracts live in schemas/, benchmarks live in bench/ and the core never imports
them (nor the stack that runs it), and the pipeline imports without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "streams": {"consumers", "trainer", "stack", "bench", "serving", "learning"},
    "consumers": {"streams", "trainer", "stack", "bench", "serving", "learning"},
    "trainer": {"streams", "consumers", "stack", "bench", "serving", "learning"},
    # learning drives runs, training and the server; it reads the registry and the server's catalog
    "learning": {"streams", "consumers", "bench"},
    "agents": {"streams", "consumers", "trainer", "learning", "serving", "stack", "bench"},
    # configuration reads art.toml and the environment; it knows the topic names (schemas) and nothing else
    "config": {"streams", "consumers", "trainer", "agents", "judges", "store", "stack", "bench", "serving",
               "learning", "cli", "ui"},
    "schemas": {"streams", "consumers", "trainer", "agents", "judges", "store", "stack", "bench", "serving",
                "learning", "cli"},
    "judges": {"streams", "consumers", "trainer", "stack", "bench", "serving", "learning", "cli"},
    "store": {"streams", "consumers", "trainer", "agents", "judges", "stack", "bench", "serving", "learning",
              "cli"},
    # the shared CLI layer (consoles, options, store clients, logging, error boundary) every command uses
    "cli": {"streams", "consumers", "trainer", "agents", "judges", "stack", "serving", "bench", "learning", "ui"},
    # serving reads the registry (trainer) and answers agents over HTTP: it never touches the pipeline
    "serving": {"streams", "consumers", "agents", "judges", "stack", "bench", "learning"},
    # capture reaches the pipeline only through the tracking SDK and the schemas
    "agents/capture": {"streams", "consumers", "trainer", "store", "judges", "stack", "bench", "serving",
                       "learning"},
    # the UI only looks: the store through its one read-only path, the broker's offsets, the registry's files
    "ui": {"streams", "consumers", "trainer", "agents", "judges", "stack", "bench", "serving", "learning"},
}
#: what ui/ may take from store/: the reader and its errors, never a writer, a DSN client or DDL
UI_STORE_NAMES = {"reader", "StoreError", "StoreMissing", "error_text"}
#: calls that write somewhere (store, broker, commits); none may appear in ui/ (``command`` with arguments:
#: ClickHouse's, not typer's ``app.command()``)
UI_WRITING_CALLS = {"insert", "command", "writer", "connect", "ensure_schema", "create_topics", "delete_topics",
                    "delete_records", "alter_configs", "commit", "send_and_wait", "send_batch",
                    "create_partitions", "raw_insert", "insert_df", "insert_arrow"}
#: the only Kafka protocol requests ui/ may build: fetch (for highwaters) and list offsets
UI_KAFKA_REQUESTS = {"aiokafka.protocol.fetch": {"FetchRequest"}, "aiokafka.protocol.offset": {"OffsetRequest"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_boundaries(package: str) -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & FORBIDDEN[package])
                 for p in (ROOT / package).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_ui_reads_the_store_only_through_the_reader() -> None:
    """ui/ imports nothing of store/ but the reader path, no ClickHouse or chDB client of its own, no
    producer, and calls nothing that writes (the broker client only fetches and lists offsets)."""
    found: dict[str, list[str]] = {}
    for path in (ROOT / "ui").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            bad: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "store":
                bad += [f"{node.module}.{a.name}" for a in node.names
                        if node.module != "store.clickhouse" or a.name not in UI_STORE_NAMES]
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and
                                                        node.module else [])
                bad += [n for n in names if n.split(".")[0] in ("clickhouse_connect", "chdb") or "Producer" in n]
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiokafka.protocol"):
                bad += [f"{node.module}.{a.name}" for a in node.names
                        if a.name not in UI_KAFKA_REQUESTS.get(node.module or "", set())]
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if name in UI_WRITING_CALLS and (name != "command" or node.args or node.keywords):
                    bad.append(f"call {name}() line {node.lineno}")
            if bad:
                found.setdefault(str(path.relative_to(ROOT)), []).extend(bad)
    assert found == {}


def test_benchmarks_live_in_bench() -> None:
    strays = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("*/**/*bench*.py")
                    if p.relative_to(ROOT).parts[0] not in ("bench", "tests", ".venv"))
    assert strays == []


def test_pipeline_and_cli_import_without_torch() -> None:
    code = ("import sys, stack.cli, streams.sessions, streams.judging, consumers.sink, consumers.replay, "
            "agents.tracking, agents.runner, agents.suite, agents.capture.run, judges, learning.loop, "
            "learning.evaluation, learning.session, serving.app, serving.server, serving.vllm_sync, "
            "trainer.basemodel, bench.serve, ui.app, ui.views, ui.cli; stack.cli._register_all(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
