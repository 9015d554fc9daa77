"""One `art up` with the recording proxy and the OTLP receiver for the whole capture package, in
front of the deterministic local upstream (bench/openai_upstream.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.openai_upstream import OpenAIUpstream
from tests.ingest.stack import RunningStack

KEY = "sk-art-test-5f3c9e1d-SECRET-never-stored"
ENV = {"ART_CAPTURE_SESSION_IDLE_TIMEOUT_S": "4", "ART_CAPTURE_TRACE_SETTLE_S": "0.3",
       "ART_CAPTURE_TRACE_IDLE_TIMEOUT_S": "3", "ART_CAPTURE_MAX_BODY_BYTES": "65536",
       "ART_CAPTURE_MAX_PROXY_BODY_BYTES": "262144", "ART_STREAM_SESSION_IDLE_TIMEOUT_S": "120"}


@pytest.fixture(scope="package")
def upstream() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as up:
        yield up


def _wait_healthy(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not healthy within {timeout_s} s")
        time.sleep(0.2)


@pytest.fixture(scope="package")
def capture_stack(tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIUpstream) -> Iterator[RunningStack]:
    data_dir: Path = tmp_path_factory.mktemp("capture") / "art-data"
    stack = RunningStack(data_dir, env=ENV, args=["--proxy-upstream", upstream.base_url, "--otlp"])
    info = stack.start()
    try:
        _wait_healthy(info.proxy_url + "/art/health")
        _wait_healthy(info.otlp_url + "/v1/art/health")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def ch(capture_stack: RunningStack) -> Any:
    return capture_stack.client()


def rows(client: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=params)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
