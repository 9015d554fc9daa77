"""The `art` error boundary and output: expected failures are one line on stderr and exit 2; results
are whole lines for pipes (no 80-column folding), full column names, a header and "0 rows" when empty,
CSV with ``\\n`` line ends. Every store here is real chDB."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from stack.cli import build_app
from store.clickhouse import connect, ensure_schema


@pytest.fixture
def art(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`art ARGS` in an empty folder with no ART_* variables: (exit code, stdout, stderr)."""
    for key in [k for k in __import__("os").environ if k.startswith("ART_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(build_app(), list(args), env=env, catch_exceptions=False)

    return run


def test_version(art) -> None:  # type: ignore[no-untyped-def]
    result = art("--version")
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"art {version('art-stream')}\n", "")


def test_stats_right_after_init_is_one_line(art, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert art("init").exit_code == 0
    result = art("stats")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (f"error: no store in {tmp_path / 'art-data' / 'clickhouse'}: "
                             "start one with `art up` (or `art demo`)\n")


def test_a_missing_config_file_is_one_line(art) -> None:  # type: ignore[no-untyped-def]
    for command in (["train"], ["stats"], ["sql", "SELECT 1"], ["replay", "--from", "beginning", "--judge", "h@2"],
                    ["patterns", "find", "x"], ["models", "list"]):
        result = art(*command, "-c", "missing.toml")
        assert (result.exit_code, result.stderr) == (2, "error: config file missing.toml does not exist "
                                                        "(run `art init`)\n"), command


def test_an_invalid_config_value_is_one_line(art) -> None:  # type: ignore[no-untyped-def]
    result = art("stats", env={"ART_KAFKA_SESSION_PARTITIONS": "zero"})
    assert result.exit_code == 2
    assert result.stderr == ("error: invalid config (defaults): art.kafka.session_partitions = 'zero' "
                             "(from ART_KAFKA_SESSION_PARTITIONS): Input should be a valid integer, unable to "
                             "parse string as an integer\n")


def test_replay_arguments_are_validated_in_one_line(art) -> None:  # type: ignore[no-untyped-def]
    result = art("replay", "--from", "beginning", "--judge", "nonsense")
    assert (result.exit_code, result.stderr) == (
        2, "error: invalid judge: --judge must be name@version, e.g. heuristic@2 (got 'nonsense')\n")
    result = art("replay", "--from", "yesterday", "--judge", "heuristic@2")
    assert (result.exit_code, result.stderr) == (
        2, "error: --from must be an ISO date/time or 'beginning', not 'yesterday'\n")
    result = art("replay", "--from", "beginning", "--judge", "heuristic@2", "--engine", "gpu")
    assert (result.exit_code, result.stderr) == (
        2, "error: invalid engine: Input should be 'auto', 'python' or 'sql' (got 'gpu')\n")


def test_training_options_are_validated_in_one_line(art) -> None:  # type: ignore[no-untyped-def]
    result = art("train", "--objective", "ppo")
    assert result.exit_code == 2
    assert result.stderr == "error: objective must be one of ('sft', 'dpo', 'awr'), not 'ppo'\n"


def test_an_empty_query_is_a_usage_error(art) -> None:  # type: ignore[no-untyped-def]
    for query in ("", "   "):
        result = art("sql", query)
        assert (result.exit_code, result.stderr) == (
            2, "error: empty query: pass one statement, e.g. art sql 'SELECT count() FROM trajectories'\n")


@pytest.fixture
def filled(tmp_path: Path) -> dict[str, str]:
    """A real store in <tmp>/data with two trajectories; the environment that points `art` at it."""
    data = tmp_path / "data"
    client = connect(f"chdb://{data / 'clickhouse'}", "art")
    ensure_schema(client)
    long_objective = "multiply seventeen by twenty-three and explain every step of the calculation " * 2
    client.insert("trajectories", [["s-1", "agent-a", long_objective, "succeeded"],
                                   ["s-2", "agent-b", "short", "failed"]],
                  column_names=["session_id", "agent_name", "objective", "status"])
    client.close()
    return {"ART_STORAGE_DATA_DIR": str(data), "ART_CLICKHOUSE_DSN": "", "ART_CLICKHOUSE_DATABASE": "art"}


def test_sql_output_for_pipes_and_people(art, filled: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    syntax = art("sql", "SELEC 1", env=filled)
    assert syntax.exit_code == 1 and syntax.stdout == ""
    assert syntax.stderr.startswith("error: Code: 62. DB::Exception: Syntax error: failed at position 7")
    assert syntax.stderr.endswith("(SYNTAX_ERROR)\n") and syntax.stderr.count("\n") == 1
    assert "formatQuery" not in syntax.stderr and "refused" not in syntax.stderr

    described = art("sql", "DESCRIBE trajectories", env=filled)
    assert described.exit_code == 0, described.output
    lines = described.stdout.splitlines()
    header = lines[1]
    for name in ("name", "type", "default_type", "default_expression", "comment", "codec_expression",
                 "ttl_expression"):
        assert f" {name} " in header
    columns = connect(f"chdb://{filled['ART_STORAGE_DATA_DIR']}/clickhouse", "art").query(
        "DESCRIBE trajectories").row_count
    assert len(lines) == 3 + columns + 1  # top border, header, rule, one line per column, bottom border

    wide = art("sql", "SELECT objective FROM trajectories ORDER BY session_id", env=filled)
    assert [line.strip("│ ") for line in wide.stdout.splitlines()[3:5]] == [
        ("multiply seventeen by twenty-three and explain every step of the calculation " * 2).strip(), "short"]

    empty = art("sql", "SELECT session_id, status FROM trajectories WHERE 0", env=filled)
    assert empty.exit_code == 0
    assert empty.stdout.splitlines()[1].split() == ["┃", "session_id", "┃", "status", "┃"]
    assert empty.stdout.endswith("\n0 rows\n")

    csv = art("sql", "SELECT session_id, status FROM trajectories ORDER BY session_id", "-f", "csv", env=filled)
    assert csv.stdout == "session_id,status\ns-1,succeeded\ns-2,failed\n"
    assert art("sql", "SELECT 1 AS x WHERE 0", "-f", "csv", env=filled).stdout == "x\n"


def test_report_refuses_a_judge_version_nothing_was_judged_by(art, filled: dict[str, str],  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    result = art("report", "--out", str(tmp_path / "r.html"), "--from-version", "heuristic@9", env=filled)
    assert (result.exit_code, result.stderr) == (
        2, "error: --from-version 'heuristic@9': no trajectory was judged by it; judged by: none yet\n")
    assert not (tmp_path / "r.html").exists()


def test_every_process_is_an_art_command_with_its_module_flags(art) -> None:  # type: ignore[no-untyped-def]
    for command, flag in (("worker", "--no-judging"), ("sink", "--decode-in-python"), ("topics", "--schema")):
        result = art(command, "--help")
        assert result.exit_code == 0 and flag in result.stdout, command
