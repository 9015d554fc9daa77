"""The attack suite: every case of issue 11 through every way a reader reaches the store.

Channels: `art sql` without a stack (the directory opened by the command), `art sql` with `art up`
running (its gateway), and the gateway's HTTP port straight: POST and GET without credentials,
and GET with the writer secret (GET never writes). Each case asserts ClickHouse's refusal AND
that nothing changed: the same tables and row counts, no file written or truncated, no connection
to a listening server. One `art up` serves the whole package (conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ingest.stack import RunningStack
from tests.store.attack_cases import ATTACKS, Attack
from tests.store.support import SEED_TRAJECTORIES, Listener, Target, art_sql, http, writer_secret

pytestmark = pytest.mark.slow


CHANNELS = ["art-sql-offline", "art-sql-live", "http-post", "http-get", "http-get-with-secret"]


@pytest.fixture(scope="module")
def channels(live: Target, offline: Target, stack: RunningStack) -> dict[str, tuple[Target, Any]]:
    return {"art-sql-offline": (offline, art_sql(offline.env)), "art-sql-live": (live, art_sql(live.env)),
            "http-post": (live, http(stack, "POST")), "http-get": (live, http(stack, "GET")),
            "http-get-with-secret": (live, http(stack, "GET", secret=writer_secret(stack)))}


@pytest.mark.parametrize("channel", CHANNELS)
def test_reads_work_on_every_channel(channels: dict[str, tuple[Target, Any]], channel: str) -> None:
    _, run = channels[channel]
    ok, out = run("SELECT count() AS n FROM trajectories")
    assert ok, out[:2000]
    assert out.strip().splitlines()[-1] == str(SEED_TRAJECTORIES)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
@pytest.mark.parametrize("channel", CHANNELS)
def test_attack_is_refused_and_changes_nothing(channels: dict[str, tuple[Target, Any]], channel: str, attack: Attack,
                                               listener: Listener, stack: RunningStack, tmp_path: Path) -> None:
    target, run = channels[channel]
    out_file, victim = tmp_path / "written.txt", tmp_path / "victim.txt"
    victim.write_text("precious\n")
    before, hits = target.snapshot(), listener.hits
    ok, out = run(attack.render(db=target.db, out=out_file, victim=victim, listener=listener.port,
                                gateway=stack.info.clickhouse_url.rsplit(":", 1)[1]))
    assert not ok, out[:2000]
    assert attack.refused(out), out[:2000]
    assert "Traceback" not in out
    assert target.snapshot() == before
    assert not out_file.exists()
    assert victim.read_text() == "precious\n"
    assert listener.hits == hits
