"""`art run`: help, configuration errors, and a full run against a scripted endpoint.

The tracking SDK is replaced by the in-memory double (installed as ``agents.tracking`` for the test),
so the run is checked without a broker; the LLM endpoint and the chDB store are real.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agents.missions import EXAMPLE_MISSION, load_mission
from agents.patterns import SuccessPattern, keywords, store_patterns
from schemas.models import SessionStatus
from stack.cli import build_app
from tests.agents.support import ChatServer, MemoryOpener

MISSION = """
name: multiply
objective: Multiply 17 by 23 with the calculator
agent_config: {max_iterations: 4}
tools: [{name: calculator}]
success_criteria: [answer is 391]
"""


def app() -> typer.Typer:
    return build_app()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key in [k for k in __import__("os").environ if k.startswith("ART_")]:
        monkeypatch.delenv(key)
    return CliRunner()


def files(tmp_path: Path, config: str, mission: str = MISSION) -> tuple[Path, Path]:
    (tmp_path / "art.toml").write_text(config)
    (tmp_path / "mission.yaml").write_text(mission)
    return tmp_path / "art.toml", tmp_path / "mission.yaml"


def test_help_texts(runner: CliRunner) -> None:
    result = runner.invoke(app(), ["--help"])
    assert result.exit_code == 0 and "Run an agent on a mission file" in result.output
    result = runner.invoke(app(), ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--config", "--rollouts", "--group-id", "--patterns", "MISSION.yaml"):
        assert option in result.output


def test_no_llm_endpoint_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    config, mission = files(tmp_path, "[art.models]\nllm_model = 'm'\n")
    result = runner.invoke(app(), ["run", str(mission), "--config", str(config)])
    assert result.exit_code == 2
    assert "no LLM endpoint configured: set llm_base_url under [art.models]" in result.output


def test_mission_errors_are_reported(runner: CliRunner, tmp_path: Path) -> None:
    config, mission = files(tmp_path, "[art.models]\nllm_base_url = 'http://127.0.0.1:9/v1'\n",
                            MISSION.replace("max_iterations: 4", "max_iterations: lots"))
    result = runner.invoke(app(), ["run", str(mission), "--config", str(config)])
    assert result.exit_code == 2
    assert "agent_config.max_iterations: Input should be a valid integer" in result.output


class FakeTracker(MemoryOpener):
    """Stands in for agents.tracking.Tracker: same construction and context-manager use."""

    made: list[FakeTracker] = []  # noqa: RUF012

    def __init__(self) -> None:
        super().__init__()
        self.entered = self.exited = False

    @classmethod
    def from_config(cls, cfg: Any) -> FakeTracker:
        tracker = cls()
        cls.made.append(tracker)
        return tracker

    async def __aenter__(self) -> FakeTracker:
        self.entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exited = True


def test_run_with_patterns_and_rollouts(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        chat_server: ChatServer, store: Any, clickhouse_dsn: str,
                                        database: str) -> None:
    fake = types.ModuleType("agents.tracking")
    fake.Tracker = FakeTracker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agents.tracking", fake)
    store_patterns(store, [SuccessPattern(session_id="old", objective="Multiply 12 by 11 with the calculator",
                                          actions=["calculator: 12*11"], reward=0.9,
                                          keywords=keywords("Multiply 12 by 11 with the calculator"))])
    answer = json.dumps({"action": "use_tool", "tool": "calculator", "input": "17*23"})
    chat_server.script("decide", answer, json.dumps({"action": "answer", "input": "391"}),
                       answer, json.dumps({"action": "answer", "input": "391"}))
    config, mission = files(tmp_path, f"""
[art.models]
llm_base_url = "{chat_server.base_url}"
llm_model = "tiny"
[art.clickhouse]
dsn = "{clickhouse_dsn}"
database = "{database}"
""")
    result = runner.invoke(app(), ["run", str(mission), "--config", str(config), "--rollouts", "2",
                                   "--group-id", "grp-1"])
    assert result.exit_code == 0, result.output
    assert "using 1 success patterns" in result.output
    assert "2 of 2 runs succeeded (group grp-1)" in result.output
    tracker = FakeTracker.made[-1]
    assert tracker.entered and tracker.exited
    assert [s.started["group_id"] for s in tracker.sessions] == ["grp-1", "grp-1"]
    assert all(s.completed == ("391", SessionStatus.succeeded) for s in tracker.sessions)
    assert "- calculator: 12*11" in chat_server.phase_requests("decide")[0]
    assert {r["model"] for r in chat_server.requests} == {"tiny"}


def test_tracker_failure_and_unreachable_store(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               chat_server: ChatServer) -> None:
    class NoStack(FakeTracker):
        @classmethod
        def from_config(cls, cfg: Any) -> FakeTracker:
            raise RuntimeError("no kafka.bootstrap configured and no running stack: start `art up` first")

    fake = types.ModuleType("agents.tracking")
    fake.Tracker = NoStack  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agents.tracking", fake)
    config, mission = files(tmp_path, f"""
[art.models]
llm_base_url = "{chat_server.base_url}"
llm_model = "tiny"
[art.clickhouse]
dsn = "http://127.0.0.1:9"
""")
    result = runner.invoke(app(), ["run", str(mission), "--config", str(config)])
    assert result.exit_code == 1
    assert "warning: success patterns unavailable" in result.output
    assert "error: cannot start tracking: no kafka.bootstrap configured and no running stack" in result.output


def test_the_real_tracker_fits_the_port() -> None:
    """The SDK's signatures accept every keyword the runner passes (checked without a broker)."""
    import inspect

    from agents.recording import SessionOpener, StepRecorder

    tracking = pytest.importorskip("agents.tracking")
    session_cls = inspect.signature(tracking.Tracker.start_session).return_annotation
    session_cls = getattr(tracking, session_cls) if isinstance(session_cls, str) else session_cls
    for port, impl in [(SessionOpener.start_session, tracking.Tracker.start_session),
                       (StepRecorder.record_step, session_cls.record_step),
                       (StepRecorder.complete, session_cls.complete)]:
        wanted = set(inspect.signature(port).parameters) - {"self"}
        assert wanted <= set(inspect.signature(impl).parameters), impl


def test_a_run_that_does_not_succeed_says_why(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              chat_server: ChatServer) -> None:
    fake = types.ModuleType("agents.tracking")
    fake.Tracker = FakeTracker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agents.tracking", fake)
    config, mission = files(tmp_path, f'[art.models]\nllm_base_url = "{chat_server.base_url}"\nllm_model = "tiny"\n')
    call = json.dumps({"action": "use_tool", "tool": "calculator", "input": "17*23"})
    chat_server.script("decide", *[call] * 4)
    failed = runner.invoke(app(), ["run", str(mission), "--config", str(config), "--no-patterns"])
    assert failed.exit_code == 0, failed.output
    sid = FakeTracker.made[-1].sessions[0].session_id
    assert failed.stderr == f"{sid} failed: no answer within max_iterations (4 steps)\n"
    chat_server.status = 400
    broken = runner.invoke(app(), ["run", str(mission), "--config", str(config), "--no-patterns"])
    assert broken.exit_code == 2, broken.output
    sid = FakeTracker.made[-1].sessions[0].session_id
    assert broken.stderr.startswith(f"{sid} error: LLM call failed: ") and broken.stderr.count("\n") == 1


def test_init_writes_the_example_mission_that_help_and_readme_show(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "conf" / "art.toml"
    result = runner.invoke(app(), ["init", str(config), "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "conf" / "mission.yaml").read_text()
    assert written == EXAMPLE_MISSION and load_mission(tmp_path / "conf" / "mission.yaml").rollouts == 2
    assert EXAMPLE_MISSION in (Path(__file__).resolve().parents[2] / "README.md").read_text()
    wide = CliRunner(env={"COLUMNS": "200"}).invoke(app(), ["run", "--help"]).output
    for line in ("success_criteria: texts the answer must contain", "max_iterations: steps before the run stops",
                 "calculator: evaluate arithmetic", "  rollouts: 2", "[art.models] llm_model"):
        assert line in wide, line


def test_patterns_find_says_when_nothing_matched(runner: CliRunner, tmp_path: Path, store: Any,
                                                 clickhouse_dsn: str, database: str) -> None:
    config = tmp_path / "art.toml"
    config.write_text(f'[art.clickhouse]\ndsn = "{clickhouse_dsn}"\ndatabase = "{database}"\n')
    result = runner.invoke(app(), ["patterns", "find", "bake bread", "--config", str(config)])
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == ("no stored pattern is similar to 'bake bread' (`art patterns refresh` stores them "
                             "from high-reward runs)\n")
