from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.judges.llm_server import ScriptedLLM


@pytest.fixture(scope="session")
def _llm_server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def llm(_llm_server: ScriptedLLM) -> ScriptedLLM:
    """The loopback endpoint with an empty script and request log (shutting a server down costs 0.5 s)."""
    _llm_server.reset()
    return _llm_server
