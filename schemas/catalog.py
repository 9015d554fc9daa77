"""Loads the .avsc files into self-contained schemas, one per top-level record.

Records may reference named types from another file (a trajectory's steps are ``art.StepRecorded``);
registries and tools such as kcat need each schema whole, so references are inlined here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema

AVRO_DIR = Path(__file__).parent / "avro"

# Load order matters: later files may reference named types defined by earlier ones.
SCHEMA_FILES: dict[str, str] = {
    "art.SessionEvent": "session_event.avsc",
    "art.TrajectoryCompleted": "trajectory_completed.avsc",
    "art.TrajectoryJudged": "trajectory_judged.avsc",
    "art.RewardAssigned": "reward_assigned.avsc",
    "art.DeadLetter": "dead_letter.avsc",
}


def _collect(node: Any, namespace: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed") and "name" in node:
            ns = node.get("namespace", namespace)
            name = node["name"] if "." in node["name"] else f"{ns}.{node['name']}"
            out[name] = node
            namespace = ns
        for value in node.values():
            _collect(value, namespace, out)
    elif isinstance(node, list):
        for value in node:
            _collect(value, namespace, out)


def _inline(node: Any, known: dict[str, Any], defined: set[str], namespace: str) -> Any:
    if isinstance(node, str):
        full = node if "." in node else f"{namespace}.{node}"
        if full in known and full not in defined:
            defined.add(full)
            return _inline(known[full], known, defined, namespace)
        return node
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed") and "name" in node:
            namespace = node.get("namespace", namespace)
            defined.add(node["name"] if "." in node["name"] else f"{namespace}.{node['name']}")
        return {k: (_inline(v, known, defined, namespace) if k in ("type", "fields", "items", "values") else v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, known, defined, namespace) for v in node]
    return node


@cache
def raw_schemas() -> dict[str, dict[str, Any]]:
    """Every top-level schema as a self-contained JSON object, keyed by full name."""
    known: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    for name, filename in SCHEMA_FILES.items():
        doc = json.loads((AVRO_DIR / filename).read_text())
        loaded[name] = doc
        _collect(doc, doc.get("namespace", ""), known)
    return {name: _inline(doc, known, set(), doc.get("namespace", "")) for name, doc in loaded.items()}


@cache
def parsed_schema(name: str) -> Any:
    """fastavro's parsed form of one top-level schema (cached: parsing is not free)."""
    return parse_schema(raw_schemas()[name])


def schema_text(name: str) -> str:
    """The schema as registered: compact JSON text of the self-contained document."""
    return json.dumps(raw_schemas()[name], separators=(",", ":"), sort_keys=True)
