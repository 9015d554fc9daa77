"""The embedded registry speaks Confluent's REST subset: our client and kcat both use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schemas.catalog import schema_text
from schemas.errors import UnknownSchemaId
from schemas.registry import LocalRegistry, RestRegistry, schema_id_for
from stack.registry_server import RegistryServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "registry.json") as srv:
        yield srv


def test_rest_client_registers_and_fetches(server: RegistryServer) -> None:
    client = RestRegistry(server.url)
    text = schema_text("art.SessionEvent")
    schema_id = client.register("t.session-events-value", text)
    assert schema_id == schema_id_for(text)  # same id as every local process computes
    assert RestRegistry(server.url).schema_by_id(schema_id) == text  # a fresh client: no cache
    with pytest.raises(UnknownSchemaId):
        RestRegistry(server.url).schema_by_id(12345)


def test_subjects_and_versions(server: RegistryServer) -> None:
    client = RestRegistry(server.url)
    first = client.register("a-value", schema_text("art.RewardAssigned"))
    second = client.register("a-value", schema_text("art.TrajectoryJudged"))
    assert client.register("a-value", schema_text("art.RewardAssigned")) == first  # idempotent
    http = httpx.Client(base_url=server.url)
    assert http.get("/subjects").json() == ["a-value"]
    assert http.get("/subjects/a-value/versions").json() == [1, 2]
    latest = http.get("/subjects/a-value/versions/latest").json()
    assert latest == {"subject": "a-value", "version": 2, "id": second, "schema": schema_text("art.TrajectoryJudged")}
    assert http.get("/subjects/a-value/versions/1").json()["id"] == first
    assert http.get("/subjects/a-value/versions/1/schema").json()["name"] == "RewardAssigned"
    missing = http.get("/schemas/ids/7")
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)
    assert http.get("/subjects/nope-value/versions").json()["error_code"] == 40401
    assert http.get("/subjects/a-value/versions/3").json()["error_code"] == 40402
    bad = http.post("/subjects/a-value/versions", json={"schema": "{not avro"})
    assert (bad.status_code, bad.json()["error_code"]) == (422, 42201)


def test_sees_what_other_processes_registered(server: RegistryServer, tmp_path: Path) -> None:
    """Workers and agents write the registry file directly; the server reads it fresh."""
    schema_id = LocalRegistry(tmp_path / "registry.json").register("other-value", schema_text("art.DeadLetter"))
    http = httpx.Client(base_url=server.url)
    assert "other-value" in http.get("/subjects").json()
    assert json.loads(http.get(f"/schemas/ids/{schema_id}").json()["schema"])["name"] == "DeadLetter"
