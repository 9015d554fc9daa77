"""The UI app in this process over a store with no stack running (the reader opens the directory
itself): filters and keyset pages against the same questions asked in SQL, escaping, errors,
dead letters, the models page's files, and the read-only guard. No browser needed."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.settings import ArtConfig
from ui.app import create_app
from ui.registry import read_curves

N = 157  # trajectories: not a multiple of any page size
AGENTS = ("alpha", "beta", "gamma")
STATUSES = ("succeeded", "succeeded", "failed", "error")
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def seed(store: Any) -> list[dict[str, Any]]:
    """N trajectories (a few sharing a completion time), rewards under two versions, one judge."""
    rows = []
    for i in range(N):
        rows.append({"session_id": f"s-{i:04d}-{uuid.uuid4().hex[:6]}", "agent_name": AGENTS[i % 3],
                     "group_id": f"g-{i // 4}", "status": STATUSES[i % 4], "model": "m1" if i < 100 else "m2",
                     "objective": f"task {i}", "completed_at": T0 + timedelta(seconds=i // 3),  # ties on purpose
                     "started_at": T0, "step_count": 1 + i % 5, "total_tokens": 10 * i})
    store.insert("trajectories", [list(r.values()) for r in rows], column_names=list(rows[0]))
    store.insert("rewards", [[r["session_id"], r["agent_name"], r["group_id"], v, (i % 10) / 10 + bump, 0.1, 4]
                             for i, r in enumerate(rows) for v, bump in (("rv@1", 0.0), ("rv@2", 0.05))],
                 column_names=["session_id", "agent_name", "group_id", "reward_version", "total", "advantage",
                               "group_size"])
    store.insert("judgments", [[r["session_id"], r["agent_name"], "heuristic", "1", (i % 7) / 7]
                               for i, r in enumerate(rows) if i % 2 == 0],
                 column_names=["session_id", "agent_name", "judge_name", "judge_version", "overall"])
    return rows


@pytest.fixture
async def app(clickhouse_dsn: str, database: str, store: Any, tmp_path: Path) -> AsyncIterator[tuple[TestClient, Any]]:
    if not clickhouse_dsn.startswith("chdb://"):
        pytest.skip("the offline reader opens a chDB directory")
    rows = seed(store)
    cfg = ArtConfig.model_validate({"clickhouse": {"dsn": clickhouse_dsn, "database": database},
                                    "storage": {"data_dir": str(tmp_path / "data")},
                                    "judge": {"reward_version": "rv@1"}})
    client = TestClient(TestServer(create_app(cfg)))
    await client.start_server()
    try:
        yield client, rows
    finally:
        await client.close()


def total(html: str) -> int:
    return int(re.search(r'id="traj-total" data-count="(\d+)"', html).group(1))  # type: ignore[union-attr]


def sessions(html: str) -> list[str]:
    return re.findall(r'<tr data-session="([^"]+)"', html)


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["completed_at"], r["session_id"]), reverse=True)


async def test_filters_count_what_sql_counts(app: tuple[TestClient, Any], store: Any) -> None:
    client, rows = app
    cases = {
        "": N,
        "agent=beta": sum(r["agent_name"] == "beta" for r in rows),
        "status=failed&model=m2": sum(r["status"] == "failed" and r["model"] == "m2" for r in rows),
        "group=g-3": 4,
        "reward_min=0.5&reward_max=0.8": sum(0.5 <= (i % 10) / 10 <= 0.8 for i in range(N)),
        "reward_version=rv@2&reward_min=0.55": sum((i % 10) / 10 + 0.05 >= 0.55 for i in range(N)),
        "judge=heuristic@1": (N + 1) // 2,
        "since=2026-11-30T12:00:10&until=2026-11-30T12:00:20": sum(10 <= i // 3 < 20 for i in range(N)),
    }
    for query, expected in cases.items():
        reply = await client.get(f"/trajectories?{query}")
        assert reply.status == 200, await reply.text()
        assert (query, total(await reply.text())) == (query, expected)
    sql = store.query("SELECT count() FROM trajectories WHERE agent_name = 'beta' AND status = 'succeeded'")
    assert total(await (await client.get("/trajectories?agent=beta&status=succeeded")).text()) == sql.result_rows[0][0]


async def test_keyset_pages_walk_every_row_once_both_ways(app: tuple[TestClient, Any]) -> None:
    client, rows = app
    expected = [r["session_id"] for r in newest_first(rows)]
    seen: list[str] = []
    pages: list[str] = []
    url = "/trajectories?limit=25"
    while url:
        html = await (await client.get(url)).text()
        pages.append(url)
        seen += sessions(html)
        found = re.search(r'id="older" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == expected
    assert len(pages) == -(-N // 25)
    html = await (await client.get(pages[-1])).text()  # from the last page back to the first
    back: list[str] = sessions(html)
    while (found := re.search(r'id="newer" href="([^"]+)"', html)):
        html = await (await client.get(found.group(1).replace("&amp;", "&"))).text()
        back = sessions(html) + back
    assert back[-len(expected):] == expected and sessions(html) == expected[:25]


async def test_rows_show_the_chosen_versions(app: tuple[TestClient, Any]) -> None:
    client, rows = app
    i = 7  # odd: not judged; reward 0.7 under rv@1, 0.75 under rv@2
    sid = rows[i]["session_id"]
    html = await (await client.get(f"/trajectories?group={rows[i]['group_id']}&reward_version=rv@2")).text()
    row = re.search(rf'<tr data-session="{sid}">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "0.750" in row and "+0.100" in row
    assert row.count("—") == 1  # the judge column: heuristic@1 never judged it


async def test_two_reward_versions_compared(app: tuple[TestClient, Any]) -> None:
    client, _ = app
    html = await (await client.get("/versions?kind=reward&a=rv@1&b=rv@2")).text()
    assert f'id="compared" data-count="{N}"' in html and "+0.050" in html and f"{N} / 0" in html
    movers = html.split('id="movers"')[1].split("</table>")[0]
    assert movers.count("<tr><td") == 20 and movers.count("+0.050") == 20
    charts = json.loads(re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert len(charts["points"]) == N and [b["n"] for b in charts["histogram"]] == [N]


async def test_text_is_escaped_and_bad_input_is_one_clear_error(app: tuple[TestClient, Any], store: Any) -> None:
    client, _ = app
    sid = "evil-<script>"
    store.insert("trajectories", [[sid, "a<b>", "<img src=x onerror=alert(1)>", T0, T0]],
                 column_names=["session_id", "agent_name", "objective", "completed_at", "started_at"])
    html = await (await client.get("/trajectories/evil-%3Cscript%3E")).text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert "<script>" not in html.replace('<script src=', "")
    reply = await client.get("/trajectories?reward_min=nan")
    assert reply.status == 400 and "reward_min: Value error, must be a finite number" in await reply.text()
    reply = await client.get("/trajectories?status=done")
    assert reply.status == 400 and "status:" in await reply.text()
    reply = await client.get("/trajectories?before=nonsense")
    assert reply.status == 400 and "cursor" in await reply.text()
    assert (await client.get("/trajectories/no-such-session")).status == 404
    assert (await client.get("/versions?kind=other")).status == 400


async def test_dead_letters_show_the_raw_record_and_its_coordinates(app: tuple[TestClient, Any], store: Any) -> None:
    client, _ = app
    raw = b"\x00\x01not avro {\"x\": 1}"
    columns = ["event_id", "source_topic", "source_partition", "source_offset", "raw", "reason", "occurred_at",
               "log_epoch"]
    store.insert("dead_letters", [[uuid.uuid4(), "art.session-events", 2, 4711, raw, "undecodable: bad magic byte",
                                   T0, 99]] + [[uuid.uuid4(), "art.rewards", 0, offset, b"?" * 10_000,
                                               f"unknown schema id {n}", T0, 99] for offset, n in ((5, 17), (6, 4242))],
                 column_names=columns)
    body = json.loads(await (await client.get("/api/live")).text())
    assert [(r["kind"], r["letters"]) for r in body["reasons"]] == [("unknown schema id N", 2), ("undecodable", 1)]
    assert body["broker_error"].startswith("no stack is running")
    assert [t["store_total"] for t in body["throughput"] if t["name"] == "trajectories"] == [N]
    html = await (await client.get("/live?reason=undecodable")).text()
    assert "source art.session-events · partition 2 · offset 4711 · log epoch 99" in html
    assert "\\x00\\x01not avro {&#34;x&#34;: 1}" in html
    assert "00 01 6e 6f 74 20 61 76" in html and "unknown schema" not in html.split('id="letters"')[1]
    html = await (await client.get("/live?reason=unknown+schema+id+N")).text()
    assert html.split('id="letters"')[1].count('class="letter"') == 2
    assert html.count("· 10,000 bytes") == 2 and html.count("[the first 4,096 of 10,000 bytes]") == 2


async def test_mutating_methods_are_refused_before_anything_runs(app: tuple[TestClient, Any]) -> None:
    client, _ = app
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        for path in ("/trajectories", "/api/live", "/nothing"):
            reply = await client.request(method, path, data=b"x")
            assert (method, path, reply.status) == (method, path, 405)
    assert (await client.get("/trajectories")).headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_model_curves_are_read_only_from_the_models_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "m-1").mkdir(parents=True)
    (models / "m-1" / "metrics.json").write_text(json.dumps(
        {"history": [{"step": 1, "loss": 2.0, "tokens": 3}, {"step": 2, "loss": "nan"}],
         "evals": [{"step": 2, "eval_loss": 1.5}]}))
    (tmp_path / "metrics.json").write_text(json.dumps({"history": [{"step": 1, "loss": 9.0}]}))
    assert read_curves(models, "m-1") == {"train_loss": [[1.0, 2.0]], "evals": {"eval_loss": [[2.0, 1.5]]}}
    assert read_curves(models, "..") is None
    assert read_curves(models, "../") is None
    assert read_curves(models, "m-missing") is None
    (models / "m-2").mkdir()
    (models / "m-2" / "metrics.json").write_text("not json")
    assert read_curves(models, "m-2") is None


async def test_models_page_shows_each_evaluation_and_the_learning_curve(app: tuple[TestClient, Any],
                                                                       store: Any) -> None:
    client, _ = app
    tables = {r[0] for r in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
              .result_rows}
    if "evaluations" not in tables:
        html = await (await client.get("/models")).text()
        assert "This store has no evaluations table yet" in html
        pytest.skip("this store has no evaluations table yet (it comes with `art eval`, issue 13)")
    rounds = [(0, 12), (1, 20), (2, 30)]
    store.insert("evaluations", [[f"e-{r}", f"m-{r}", "heldout", "builtin", 40, s,
                                  {"eval_success": s / 40, "eval_success_lo": s / 40 - 0.1,
                                   "eval_success_hi": s / 40 + 0.1}, "loop-1", r, T0 + timedelta(hours=r),
                                  T0 + timedelta(hours=r, minutes=5)] for r, s in rounds],
                 column_names=["eval_id", "model_id", "split", "suite", "missions", "successes", "metrics", "loop_id",
                               "round", "started_at", "finished_at"])
    html = await (await client.get("/models")).text()
    charts = json.loads(re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert [(p["round"], p["success_rate"]) for p in charts["learning"]] == [(r, s / 40) for r, s in rounds]
    table = html.split('id="evaluations"')[1].split("</table>")[0]
    assert table.count("<tr><td") == 3 and "0.750" in table


async def test_a_long_step_field_is_cut_and_says_so(app: tuple[TestClient, Any], store: Any) -> None:
    client, _ = app
    sid = "proxy/session/1"  # a header-named session may hold slashes
    store.insert("trajectories", [[sid, "agent", T0, T0]],
                 column_names=["session_id", "agent_name", "completed_at", "started_at"])
    store.insert("steps", [[sid, 0, 0, "é" * 40_000, "short thought", "use_tool"]],
                 column_names=["session_id", "seq", "step_number", "tool_result", "thought", "action_kind"])
    reply = await client.get("/trajectories/proxy/session/1")
    html = await reply.text()
    assert reply.status == 200 and "short thought" in html
    assert "[the first 16,384 of 40,000 characters]" in html and html.count("é") == 16_384


async def test_a_data_dir_without_a_store_is_one_clear_error(tmp_path: Path) -> None:
    cfg = ArtConfig.model_validate({"storage": {"data_dir": str(tmp_path / "empty")}})
    async with TestClient(TestServer(create_app(cfg))) as client:
        reply = await client.get("/trajectories")
        assert reply.status == 503
        assert f"no store in {(tmp_path / 'empty' / 'clickhouse').resolve()}: start one with" in await reply.text()
        assert (await client.get("/api/live")).status == 503
