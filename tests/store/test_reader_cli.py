"""Readers never create a store: `art sql`, `stats` and `report` on a missing one say so and exit 2.
And `art sql` as a real process on a store it opens itself (no stack)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stack.cli import build_app
from tests.store.support import cli_env

ROOT = Path(__file__).resolve().parents[2]


def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("command", [["sql", "SELECT 1"], ["stats"], ["report", "--out", "{tmp}/r.html"]])
def test_a_data_dir_that_does_not_exist_is_no_store(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "nothing-here"
    code, out = cli(cli_env(data, "art"), *(arg.format(tmp=tmp_path) for arg in command))
    assert code == 2 and out == f"error: no store in {data / 'clickhouse'}: start one with `art up` (or `art demo`)\n"
    assert not data.exists()
    assert not (tmp_path / "r.html").exists()


def test_an_initialised_but_empty_data_dir_is_no_store(tmp_path: Path) -> None:
    data = tmp_path / "art-data"
    assert cli(cli_env(data, "art"), "init", str(tmp_path / "art.toml"), "--data-dir", str(data))[0] == 0
    code, out = cli(cli_env(data, "art"), "sql", "SELECT 1")
    assert code == 2 and "no store in" in out, out
    assert list((data / "clickhouse").iterdir()) == []


def test_a_missing_database_is_no_store_and_is_not_created(clickhouse_dsn: str, store) -> None:  # type: ignore[no-untyped-def]
    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("`art sql` without a stack opens a chDB directory")
    name = f"absent_{uuid.uuid4().hex[:8]}"
    code, out = cli(cli_env(Path(clickhouse_dsn[len("chdb://"):]).parent, name), "sql", "SELECT 1")
    assert code == 2 and f"database '{name}' does not exist" in out, out
    assert store.command(f"SELECT count() FROM system.databases WHERE name = '{name}'") == 0


@pytest.mark.slow
def test_art_sql_as_a_process_on_a_store_it_opens_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, **cli_env(data, "art")}
    art = [sys.executable, "-m", "stack"]
    missing = subprocess.run([*art, "sql", "SELECT 1"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no store in" in missing.stderr and not data.exists()
    make = ("from store.clickhouse import connect, ensure_schema; c = connect('chdb://%s', 'art'); ensure_schema(c); "
            "c.command(\"INSERT INTO steps (session_id, seq) VALUES ('s', 1)\")" % (data / "clickhouse"))
    subprocess.run([sys.executable, "-c", make], cwd=ROOT, check=True, timeout=120)
    out = tmp_path / "out.txt"
    refused = subprocess.run([*art, "sql", f"SELECT * FROM steps INTO OUTFILE '{out}'"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "INTO OUTFILE is not allowed for readers. (READONLY)" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr and not out.exists()
    read = subprocess.run([*art, "sql", "SELECT session_id, seq FROM steps", "--format", "csv"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0 and read.stdout.splitlines()[-2:] == ["session_id,seq", "s,1"], read.stdout
