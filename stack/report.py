"""`art report`: one self-contained HTML page (plots as embedded PNG) from the analyst views.

What an analyst looks at first: whether the agents learn (held-out success per model version, the
curve `art loop` draws), reward over time per agent, success rate per group, how scores moved
between two judge versions, and which tools fail. Everything comes from the views in
store/ddl/030_views.sql, so the page shows exactly what `art sql` would.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from clickhouse_connect.driver.client import Client

from cli.options import ConfigOpt
from cli.output import err as console
from cli.output import fail
from cli.stores import store_reader
from config.settings import load_config

MAX_BARS = 40


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}" alt="plot">'


def _table(columns: list[str], rows: Sequence[Sequence[Any]], limit: int = 20) -> str:
    def cell(v: Any) -> str:
        return html.escape(f"{v:.3f}" if isinstance(v, float) else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows[:limit])
    more = f"<p class=note>{len(rows) - limit} more rows not shown</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _empty(what: str) -> str:
    return f"<p class=note>No {html.escape(what)} yet.</p>"


def reward_over_time(client: Client, reward_version: str | None) -> str:
    versions = [v for (v,) in client.query("SELECT reward_version FROM reward_by_agent_day GROUP BY reward_version "
                                           "ORDER BY sum(trajectories) DESC").result_rows]
    if not versions:
        return _section("Reward over time per agent", _empty("rewards"))
    version: str = reward_version if reward_version is not None and reward_version in versions else versions[0]
    result = client.query("SELECT agent_name, day, avg_reward, trajectories, success_rate FROM reward_by_agent_day "
                          "WHERE reward_version = {v:String} ORDER BY agent_name, day", parameters={"v": version})
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    by_agent: dict[str, list[tuple[Any, float]]] = {}
    for agent, day, avg, _, _ in result.result_rows:
        by_agent.setdefault(agent, []).append((day, avg))
    for agent, points in sorted(by_agent.items()):
        ax.plot([d for d, _ in points], [a for _, a in points], marker="o", label=agent)
    import matplotlib.dates as mdates

    days = {d for points in by_agent.values() for d, _ in points}
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(days) // 10)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.set_ylabel(f"mean reward ({version})")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small", ncol=2)
    fig.autofmt_xdate()
    note = f"<p>Reward version <b>{html.escape(version)}</b> (others: {html.escape(', '.join(versions))}).</p>"
    return _section("Reward over time per agent", note + _png(fig) + _table(list(result.column_names),
                                                                           result.result_rows))


def _hbars(result_rows: Sequence[Sequence[Any]], color: str, xlabel: str) -> tuple[Any, Any]:
    """One horizontal bar per row: label from column 0, value from column 3, first row on top."""
    import matplotlib.pyplot as plt

    rows = list(reversed(result_rows))
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.25 * len(rows) + 1)))
    ax.barh([str(r[0]) for r in rows], [r[3] for r in rows], color=color)
    ax.set_xlabel(xlabel)
    return fig, ax


def success_per_group(client: Client) -> str:
    result = client.query(f"SELECT group_id, members, succeeded, success_rate FROM group_outcomes "
                          f"ORDER BY last_completed DESC LIMIT {MAX_BARS}")
    if not result.result_rows:
        return _section("Success rate per group", _empty("grouped trajectories"))
    fig, ax = _hbars(result.result_rows, "#4c9a2a", "success rate")
    ax.set_xlim(0, 1)
    return _section("Success rate per group", _png(fig) + _table(list(result.column_names), result.result_rows))


class UnknownVersion(LookupError):
    """A judge version was asked for that nothing was judged with."""


def judge_pair(client: Client, old: str | None, new: str | None) -> tuple[str | None, str | None]:
    """The requested versions, else the first and the last judge version ever used."""
    known = [j for (j,) in client.query("SELECT judge FROM judge_versions ORDER BY first_judged, judge").result_rows]
    for flag, asked in (("--from-version", old), ("--to-version", new)):
        if asked is not None and asked not in known:
            raise UnknownVersion(f"{flag} {asked!r}: no trajectory was judged by it; judged by: "
                                 f"{', '.join(known) or 'none yet'}")
    if old is None and known:
        old = known[0]
    if new is None and known:
        new = known[-1] if known[-1] != old else None
    return old, new


def score_shift(client: Client, old: str | None, new: str | None) -> str:
    title = "Score shift between judge versions"
    if not old or not new:
        return _section(title, _empty("second judge version (run `art replay --judge name@version`)"))
    result = client.query("SELECT session_id, agent_name, old_score, new_score, shift FROM judge_version_comparison("
                          "old_judge = {o:String}, new_judge = {n:String}) ORDER BY abs(shift) DESC, session_id",
                          parameters={"o": old, "n": new})
    rows = result.result_rows
    label = f"{html.escape(old)} → {html.escape(new)}"
    if not rows:
        return _section(f"{title}: {label}", _empty("trajectory judged by both versions"))
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.scatter([r[2] for r in rows], [r[3] for r in rows], s=12, alpha=0.7)
    left.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    left.set_xlabel(old)
    left.set_ylabel(new)
    right.hist([r[4] for r in rows], bins=20, color="#3b6ea5")
    right.set_xlabel("new - old")
    up, down = sum(1 for r in rows if r[4] > 1e-9), sum(1 for r in rows if r[4] < -1e-9)
    mean = sum(r[4] for r in rows) / len(rows)
    summary = (f"<p>{len(rows)} trajectories judged by both <b>{html.escape(old)}</b> and <b>{html.escape(new)}</b>: "
               f"mean shift {mean:+.3f}, {up} scored higher, {down} lower, {len(rows) - up - down} unchanged.</p>")
    return _section(f"{title}: {label}", summary + _png(fig) + _table(list(result.column_names), rows))


def tool_errors(client: Client) -> str:
    result = client.query(f"SELECT tool, calls, errors, error_rate, sessions FROM tool_error_rates "
                          f"ORDER BY calls DESC, tool LIMIT {MAX_BARS}")
    if not result.result_rows:
        return _section("Tool error rates", _empty("tool calls"))
    fig, _ = _hbars(result.result_rows, "#b5442c", "error rate")
    return _section("Tool error rates", _png(fig) + _table(list(result.column_names), result.result_rows))


def learning_curve(client: Client) -> str:
    """Held-out task success per model version, round by round, for each `art loop` (and lone `art eval`s)."""
    title = "Learning curve (held-out task success per model version)"
    result = client.query("SELECT loop_id, round, model_id, objective, successes, missions, success_rate, "
                          "success_lo, success_hi, mean_reward, tokens_per_s, is_champion FROM learning_curve "
                          "ORDER BY finished_at, loop_id, round")
    rows = result.result_rows
    if not rows:
        return _section(title, _empty("evaluation (run `art eval MODEL` or `art loop`)"))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    loops: dict[str, list[Sequence[Any]]] = {}
    for r in rows:
        loops.setdefault(r[0] or "art eval", []).append(r)
    for loop_id, points in loops.items():
        xs = [p[1] for p in points] if loop_id != "art eval" else list(range(len(points)))
        ys = [p[6] for p in points]
        ax.errorbar(xs, ys, yerr=[[max(0.0, y - p[7]) for y, p in zip(ys, points, strict=True)],
                                  [max(0.0, p[8] - y) for y, p in zip(ys, points, strict=True)]],
                    marker="o", capsize=3, label=loop_id)
    ax.set_xlabel("round (0 = starting champion)")
    ax.set_ylabel("task success (95% CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    return _section(title, _png(fig) + _table(list(result.column_names), rows, limit=60))


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}.note{color:#777}section{margin-bottom:2em}img{max-width:100%}"""


def build_report(client: Client, *, old: str | None = None, new: str | None = None,
                 reward_version: str | None = None) -> str:
    """The whole page as one string (no external files, scripts or fonts)."""
    import matplotlib

    matplotlib.use("Agg")
    old, new = judge_pair(client, old, new)
    sections = [learning_curve(client), reward_over_time(client, reward_version), success_per_group(client),
                score_shift(client, old, new), tool_errors(client)]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>ART Stream report</title><style>{STYLE}</style>"
            f"</head><body><h1>ART Stream report</h1><p class=note>generated {stamp}</p>{''.join(sections)}"
            "</body></html>")


def report(out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("report.html"),
           from_version: Annotated[str | None, typer.Option(help="old judge, name@version (default: first)")] = None,
           to_version: Annotated[str | None, typer.Option(help="new judge, name@version (default: latest)")] = None,
           reward_version: Annotated[str | None, typer.Option(help="reward version to plot (default: config)")] = None,
           config: ConfigOpt = None) -> None:
    """Write a self-contained HTML report (embedded PNG plots) from the analyst views."""
    cfg = load_config(config)
    with store_reader(cfg) as client:  # a missing store or view: one error line, no traceback
        try:
            page = build_report(client, old=from_version, new=to_version,
                                reward_version=reward_version or cfg.judge.reward_version)
        except UnknownVersion as exc:
            raise fail(str(exc), 2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    console.print(f"[green]report written[/green]: {out} ({len(page) // 1024} KiB)")


def register(app: typer.Typer) -> None:
    app.command()(report)
