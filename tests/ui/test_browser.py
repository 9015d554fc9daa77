"""`art ui` in a real browser, on the UI that `art up` serves, after `art demo` and a replay.

One `art up` and one Chromium for the module; tests run in file order on the data the fixtures
made: `art demo` (3 groups of 4 scripted rollouts), `art replay` under heuristic@2 and
ruler-heuristic@2, a registry seeded as the trainer writes it. Every number a page shows is
compared with what `art sql` returns. The live test runs last: it adds a fleet while the page
watches. A screenshot of each page is kept (the folder is printed at the end of the run).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ingest.stack import RunningStack
from tests.ui.conftest import browser_missing, require_playwright

GROUPS, ROLLOUTS = 3, 4
MUTATING = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    if browser_missing():
        pytest.skip(browser_missing())  # no stack either: nothing here runs without the browser
    require_playwright()
    root = tmp_path_factory.mktemp("ui")
    env = {"ART_JUDGE_ROLLOUTS_PER_GROUP": str(ROLLOUTS), "ART_JUDGE_GROUP_WINDOW_S": "5"}
    with RunningStack(root / "data", env=env) as running:
        demo = art(running, "demo", "--groups", str(GROUPS), "--rollouts", str(ROLLOUTS), "--no-train",
                   "--timeout", "120", timeout=300)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        replay = art(running, "replay", "--from", "beginning", "--judge", "heuristic@2",
                     "--reward-version", "ruler-heuristic@2", "--json")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert json.loads(replay.stdout.strip().splitlines()[-1])["judgments"] == GROUPS * ROLLOUTS
        seed_registry(running)
        yield running


@pytest.fixture(scope="module")
def ui(stack: RunningStack) -> str:
    url = stack.info.ui_url
    assert url.startswith("http://127.0.0.1:")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/live", timeout=10).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the UI at {url} never answered")


def art(stack: RunningStack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack", *args], env=stack.env, capture_output=True, text=True,
                          timeout=timeout, cwd=stack.data_dir.parent)


def sql(stack: RunningStack, query: str) -> list[dict[str, str]]:
    """Rows as `art sql --format csv` prints them."""
    out = art(stack, "sql", query, "--format", "csv")
    assert out.returncode == 0, out.stdout + out.stderr
    return list(csv.DictReader(io.StringIO(out.stdout)))


def sql_count(stack: RunningStack, query: str) -> int:
    return int(next(iter(sql(stack, query)[0].values())))


def seed_registry(stack: RunningStack) -> None:
    """Two models, their run and window, and the champion's per-step losses, as the trainer writes them."""
    client = stack.client()
    now = datetime.now(UTC).replace(microsecond=0)
    window = "w-ui-test"
    client.insert("training_windows", [[window, "SELECT …", "{}", "ruler-heuristic@1", ["s1", "s2"], 2, 5, 1, now]],
                  column_names=["window_id", "query", "params", "reward_version", "session_ids", "trajectory_count",
                                "step_count", "group_count", "created_at"])
    models = [("m-ui-old", "general-sft", 0, {"eval_loss": 2.5}), ("m-ui-champ", "ui-champion", 1,
                                                                     {"eval_loss": 1.25, "steps": 30.0})]
    client.insert("models", [[mid, name, "tiny-base", "sft", "general", window, f"/models/{mid}", metrics, champ,
                              now - timedelta(minutes=i), now] for i, (mid, name, champ, metrics) in enumerate(models)],
                  column_names=["model_id", "name", "base_model", "objective", "specialization", "window_id", "path",
                                "metrics", "is_champion", "created_at", "updated_at"])
    client.insert("training_runs", [["r-ui", window, "m-ui-champ", "sft", "general", "finished", "{}", 30,
                                     {"loss_first": 3.0, "loss_last": 1.1}, "", now - timedelta(seconds=40), now]],
                  column_names=["run_id", "window_id", "model_id", "objective", "specialization", "status", "config",
                                "steps", "metrics", "error", "started_at", "updated_at"])
    folder = stack.data_dir / "models" / "m-ui-champ"
    folder.mkdir(parents=True, exist_ok=True)
    history = [{"step": s, "loss": 3.0 - s * 0.06, "tokens": 100, "seconds": 0.1} for s in range(1, 31)]
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"eval_loss": 1.25}, "history": history,
                                                    "evals": [{"step": 10, "eval_loss": 1.5},
                                                              {"step": 30, "eval_loss": 1.25}]}))


def until(page: Any, expression: str, timeout_s: float = 30.0) -> Any:
    """Poll a JavaScript expression until it is truthy. (Playwright's wait_for_function evaluates by
    eval(), which the UI's Content-Security-Policy refuses, as it should.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value or time.monotonic() > deadline:
            assert value, f"{expression} stayed false for {timeout_s} s"
            return value
        page.wait_for_timeout(250)


def stored_events(page: Any) -> int:
    return int(cell(page, "session events", 3).replace(",", ""))


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def count_on(page: Any, selector: str) -> int:
    return int(page.locator(selector).get_attribute("data-count"))


def cell(page: Any, row: str, column: int) -> str:
    return page.locator(f'#throughput tr[data-name="{row}"] td').nth(column).inner_text()


def test_trajectory_list_shows_the_counts_of_art_sql(stack: RunningStack, ui: str, page: Any,
                                                     artifacts: Path) -> None:
    total = sql_count(stack, "SELECT count() FROM trajectories")
    assert total == GROUPS * ROLLOUTS
    page.goto(f"{ui}/trajectories")
    assert count_on(page, "#traj-total") == total
    assert page.locator("#traj-table tbody tr[data-session]").count() == total
    failed = sql_count(stack, "SELECT count() FROM trajectories WHERE status = 'failed'")
    page.goto(f"{ui}/trajectories?status=failed")
    assert count_on(page, "#traj-total") == failed
    shot(page, artifacts, "trajectories")
    assert page.errors == []


def test_a_filter_narrows_the_table_and_the_url_carries_it(stack: RunningStack, ui: str, page: Any,
                                                          artifacts: Path) -> None:
    page.goto(f"{ui}/trajectories")
    page.select_option('select[name="agent"]', "expert-agent")
    page.fill('input[name="reward_min"]', "0.5")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**agent=expert-agent**")
    expected = sql_count(stack, "SELECT count() FROM trajectories WHERE agent_name = 'expert-agent' AND session_id IN "
                                "(SELECT session_id FROM rewards WHERE reward_version = 'ruler-heuristic@1' "
                                "AND total >= 0.5)")
    assert 0 < expected < GROUPS * ROLLOUTS
    assert count_on(page, "#traj-total") == expected
    agents = page.locator("#traj-table tbody tr[data-session] td:nth-child(2)").all_inner_texts()
    assert agents == ["expert-agent"] * expected
    shared = page.url  # a view shared as a URL opens as the same view
    page.goto(f"{ui}/live")
    page.goto(shared)
    assert count_on(page, "#traj-total") == expected
    shot(page, artifacts, "trajectories-filtered")
    page.goto(f"{ui}/trajectories?limit=25&reward_min=abc")
    assert "reward_min" in page.locator("#error-message").inner_text()
    page.errors.clear()  # that 400 was asked for


def test_pages_walk_the_list_by_keyset(stack: RunningStack, ui: str, page: Any) -> None:
    expected = [r["session_id"] for r in sql(stack, "SELECT session_id FROM trajectories "
                                                    "ORDER BY completed_at DESC, session_id DESC")]
    seen: list[str] = []
    page.goto(f"{ui}/trajectories?limit=25")
    while True:
        seen += page.locator("#traj-table tbody tr[data-session]").evaluate_all(
            "rows => rows.map(r => r.dataset.session)")
        if page.locator("#older").count() == 0:
            break
        page.click("#older")
    assert seen == expected[:len(seen)] and len(seen) == len(expected)


def test_a_trajectory_shows_its_steps_both_versions_and_its_group(stack: RunningStack, ui: str, page: Any,
                                                                 artifacts: Path) -> None:
    row = sql(stack, "SELECT session_id, group_id FROM trajectories WHERE agent_name = 'careful-agent' "
                     "ORDER BY session_id LIMIT 1")[0]
    steps = sql(stack, f"SELECT thought, tool_result FROM steps WHERE session_id = '{row['session_id']}' ORDER BY seq")
    page.goto(f"{ui}/trajectories/{row['session_id']}")
    assert page.locator("#steps article.step").count() == len(steps) >= 2
    assert page.locator("#steps article.step").first.inner_text().count(steps[0]["thought"]) == 1
    judges = page.locator("#judgments thead th").all_inner_texts()
    assert judges[1:] == ["heuristic@1", "heuristic@2"]
    rewards = page.locator("#rewards thead th").all_inner_texts()
    assert rewards[1:] == ["ruler-heuristic@1", "ruler-heuristic@2"]
    members = sql_count(stack, f"SELECT count() FROM trajectories WHERE group_id = '{row['group_id']}'")
    assert page.locator("#group tbody tr").count() == members == ROLLOUTS
    assert page.locator("#group tbody tr.current").inner_text().startswith(row["session_id"][:12])
    shot(page, artifacts, "trajectory")
    assert page.errors == []


def test_versions_compare_two_judges_and_two_reward_versions(stack: RunningStack, ui: str, page: Any,
                                                            artifacts: Path) -> None:
    both = sql_count(stack, "SELECT count() FROM judge_version_comparison(old_judge = 'heuristic@1', "
                            "new_judge = 'heuristic@2')")
    page.goto(f"{ui}/versions?kind=judge&a=heuristic@1&b=heuristic@2")
    assert count_on(page, "#compared") == both == GROUPS * ROLLOUTS
    until(page, "Chart.getChart('scatter') !== undefined && Chart.getChart('histogram') !== undefined")
    shot(page, artifacts, "versions-judge")
    page.goto(f"{ui}/versions?kind=reward&a=ruler-heuristic@1&b=ruler-heuristic@2")
    assert count_on(page, "#compared") == sql_count(
        stack, "SELECT count() FROM reward_version_comparison(old_version = 'ruler-heuristic@1', "
               "new_version = 'ruler-heuristic@2')")
    shot(page, artifacts, "versions-reward")
    assert page.errors == []


def test_models_show_the_registry_champion_and_loss_curve(stack: RunningStack, ui: str, page: Any,
                                                         artifacts: Path) -> None:
    page.goto(f"{ui}/models")
    models = sql_count(stack, "SELECT count() FROM models FINAL")
    assert page.locator("#registry tbody tr").count() == models == 2
    assert "ui-champion" in page.locator("#champions").inner_text()
    assert page.locator("#runs tbody tr").first.inner_text().startswith("r-ui")
    assert until(page, "Chart.getChart('loss') && Chart.getChart('loss').data.datasets[0].data.length") == 30
    until(page, "Chart.getChart('success') !== undefined")
    shot(page, artifacts, "models")
    assert page.errors == []


def test_every_mutating_request_is_refused(stack: RunningStack, ui: str) -> None:
    sid = sql(stack, "SELECT session_id FROM trajectories LIMIT 1")[0]["session_id"]
    tables = ("trajectories", "steps", "judgments", "rewards", "models", "dead_letters", "session_events")
    counts = "SELECT " + ", ".join(f"(SELECT count() FROM {t}) AS {t}" for t in tables)
    before = sql(stack, counts)
    paths = ["/", "/live", "/api/live", "/trajectories", f"/trajectories/{sid}", "/versions", "/models",
             "/static/app.js", "/no/such/page"]
    with httpx.Client(base_url=ui, timeout=30) as client:
        for path in paths:
            for method in MUTATING:
                reply = client.request(method, path, content=b"INSERT INTO trajectories VALUES ()")
                assert (path, method, reply.status_code) == (path, method, 405)
                assert reply.headers["Allow"] == "GET,HEAD"
            assert client.get(path).status_code in (200, 302, 404)
    assert sql(stack, counts) == before and int(before[0]["trajectories"]) == GROUPS * ROLLOUTS


def test_live_counters_move_while_a_fleet_runs(stack: RunningStack, ui: str, page: Any, artifacts: Path) -> None:
    page.goto(f"{ui}/live")
    page.evaluate("window.__notReloaded = true")
    stored = sql_count(stack, "SELECT count() FROM session_events")
    deadline = time.monotonic() + 30
    while stored_events(page) != stored and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert stored_events(page) == stored
    logged = cell(page, "session events", 1)
    fleet = threading.Thread(target=lambda: asyncio.run(run_fleet(stack, groups=4)))
    fleet.start()
    rates: set[str] = set()
    deadline = time.monotonic() + 60
    while fleet.is_alive() and time.monotonic() < deadline:
        rates.add(page.locator('[data-live="events_in"]').inner_text())
        page.wait_for_timeout(250)
    fleet.join()
    grown = sql_count(stack, "SELECT count() FROM session_events")  # may still grow: wait for the store to settle
    deadline = time.monotonic() + 60
    while stored_events(page) < grown and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert stored_events(page) >= grown > stored
    assert cell(page, "session events", 1) != logged  # the log's highwater moved too
    assert rates - {"0.0", "—"}, f"events in never showed a rate while the fleet ran: {rates}"
    assert page.evaluate("window.__notReloaded") is True
    shot(page, artifacts, "live")
    assert page.errors == []


def test_a_dead_letter_shows_its_reason_raw_record_and_coordinates(stack: RunningStack, ui: str, page: Any,
                                                                  artifacts: Path) -> None:
    poison = b"\x00not an avro record <b>bold</b>"
    partition, offset = off_the_page_loop(produce_raw(stack, poison))
    page.goto(f"{ui}/live")
    page.locator("#reasons a").first.wait_for(timeout=60_000)
    stored = sql(stack, "SELECT reason, source_topic, source_partition, source_offset FROM dead_letters")
    assert [(int(r["source_partition"]), int(r["source_offset"])) for r in stored] == [(partition, offset)]
    assert page.locator('[data-live="dead_letters"]').inner_text() == "1"
    page.locator("#reasons a").first.click()
    page.wait_for_url("**/live?reason=**")
    letter = page.locator("#letters .letter").first
    assert stored[0]["reason"] in letter.inner_text()
    assert f"source {stack.cfg.kafka.topics().session_events.name} · partition {partition} · offset {offset}" in \
        letter.locator(".coords").inner_text()
    letter.locator("summary").first.click()
    assert letter.locator("pre").first.inner_text() == "\\x00not an avro record <b>bold</b>"
    shot(page, artifacts, "live-dead-letter")
    assert page.errors == []


def off_the_page_loop(coro: Any) -> Any:
    """Run ``coro`` to its end in a thread: Playwright's sync API holds this thread's event loop."""
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(asyncio.run(coro)))
    worker.start()
    worker.join(60)
    return out[0]


async def produce_raw(stack: RunningStack, value: bytes) -> tuple[int, int]:
    """One record that is not an event, straight onto the session-events topic: (partition, offset)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=stack.info.bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(stack.cfg.kafka.topics().session_events.name, value, key=b"poison")
    finally:
        await producer.stop()
    return meta.partition, meta.offset


async def run_fleet(stack: RunningStack, groups: int) -> None:
    """Scripted rollouts spread over a few seconds, through the real tracking SDK."""
    from agents.scripted import POLICIES, calculator_toolbox, make_tasks, run_scripted
    from agents.tracking import Tracker

    tools, rng = calculator_toolbox(), random.Random(7)
    async with Tracker.from_config(stack.cfg) as tracker:
        for task in make_tasks(groups, seed=99):
            await asyncio.gather(*(run_scripted(tracker, tools, task, POLICIES[i % len(POLICIES)], task.task_id, rng)
                                   for i in range(ROLLOUTS)))
            await asyncio.sleep(1.5)
