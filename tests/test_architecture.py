"""The design card's boundaries, checked: streams/ never imports consumers/ or trainer/ (nor the
reverse), shared contracts live in schemas/, and the pipeline imports without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "streams": {"consumers", "trainer", "serving"},
    "consumers": {"streams", "trainer", "serving"},
    "trainer": {"streams", "consumers", "serving"},
    "schemas": {"streams", "consumers", "trainer", "agents", "judges", "store", "stack", "bench", "serving", "cli"},
    "judges": {"streams", "consumers", "trainer", "stack", "serving", "cli"},
    "store": {"streams", "consumers", "trainer", "agents", "judges", "stack", "serving", "cli"},
    # the shared CLI layer (consoles, options, store clients, logging, error boundary) every command uses
    "cli": {"streams", "consumers", "trainer", "agents", "judges", "stack", "serving", "bench"},
    # serving reads the registry (trainer) and answers agents over HTTP: it never touches the pipeline
    "serving": {"streams", "consumers", "agents", "judges", "stack", "bench"},
    "agents": {"serving"},  # agents reach a served model over HTTP only, like any other endpoint
    # capture reaches the pipeline only through the tracking SDK and the schemas
    "agents/capture": {"streams", "consumers", "trainer", "store", "judges", "stack", "bench", "serving"},
}


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


def test_pipeline_and_cli_import_without_torch() -> None:
    code = ("import sys, stack.cli, streams.sessions, streams.judging, consumers.sink, consumers.replay, "
            "agents.tracking, agents.runner, agents.capture.run, judges, serving.app, serving.server, "
            "serving.vllm_sync, trainer.basemodel, bench.serve; stack.cli._register_all(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
