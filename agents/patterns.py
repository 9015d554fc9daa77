"""Success patterns: what high-reward runs did, kept for the runner's prompts.

``extract_patterns`` reads completed, succeeded trajectories whose latest reward (``argMax`` over
``assigned_at`` from ``rewards FINAL``) reaches a threshold, with their error-free tool steps
(``steps FINAL``), so duplicated or redelivered rows never count twice. ``store_patterns`` writes them
to ``success_patterns`` (ReplacingMergeTree keyed by session_id: re-extracting replaces, never adds).

Retrieval is TF-IDF cosine similarity between the new objective's keywords and each pattern's
keywords, deterministic by construction: keywords are lower-cased ``[a-z0-9]+`` tokens minus a fixed
stop-word list and one-letter tokens; tf is binary; idf is the smoothed ``ln((1+N)/(1+df)) + 1``
over the candidate patterns; ties break by reward (higher first), then session_id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, ConfigDict, Field

EXTRACTOR_VERSION = "patterns@1"
_TOKEN = re.compile(r"[a-z0-9]+")
_STOP_TEXT = (
    "a an and are as at be by can do does for from has have how i in into is it its me my of on or our please "
    "should so than that the their them then there these this to use using was we what when where which who why "
    "will with you your")
STOPWORDS = frozenset(_STOP_TEXT.split())
COLUMNS = ["session_id", "agent_name", "objective", "actions", "summary", "reward", "reward_version", "keywords",
           "extractor_version", "extracted_at"]


class SuccessPattern(BaseModel):
    """What one high-reward run did: its objective and the actions that worked."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    agent_name: str = ""
    objective: str
    actions: list[str] = Field(default_factory=list, description="error-free tool actions, 'tool: input'")
    summary: str = ""
    reward: float
    reward_version: str = ""
    keywords: list[str] = Field(default_factory=list)


class ScoredPattern(BaseModel):
    model_config = ConfigDict(frozen=True)

    pattern: SuccessPattern
    similarity: float


def keywords(text: str) -> list[str]:
    """Sorted distinct content words of ``text`` (see the module docstring)."""
    return sorted({t for t in _TOKEN.findall(text.lower()) if len(t) > 1 and t not in STOPWORDS})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


_TRAJECTORIES_SQL = """
WITH r AS (
    SELECT session_id,
           argMax(total, assigned_at) AS reward,
           argMax(reward_version, assigned_at) AS version
    FROM rewards FINAL
    WHERE {reward_version:String} = '' OR reward_version = {reward_version:String}
    GROUP BY session_id
)
SELECT t.session_id, t.agent_name, t.objective, t.final_answer, t.step_count, t.tools_used, r.reward, r.version
FROM trajectories AS t FINAL
INNER JOIN r ON r.session_id = t.session_id
WHERE r.reward >= {min_reward:Float64} AND t.status = 'succeeded'
ORDER BY r.reward DESC, t.session_id
LIMIT {limit:UInt32}
"""

_STEPS_SQL = """
SELECT session_id, tool, action_input, action_text
FROM steps FINAL
WHERE session_id IN {ids:Array(String)} AND action_kind = 'use_tool' AND error IS NULL
ORDER BY session_id, seq
"""


def extract_patterns(client: Client, *, min_reward: float = 0.7, reward_version: str = "",
                     limit: int = 1000) -> list[SuccessPattern]:
    """Patterns for the best succeeded trajectories with reward >= ``min_reward``, best first."""
    rows = client.query(_TRAJECTORIES_SQL, parameters={"min_reward": min_reward, "reward_version": reward_version,
                                                       "limit": limit}).result_rows
    if not rows:
        return []
    actions: dict[str, list[str]] = {}
    step_rows = client.query(_STEPS_SQL, parameters={"ids": [r[0] for r in rows]}).result_rows
    for session_id, tool, action_input, action_text in step_rows:
        action = f"{tool}: {_clip(action_input or action_text, 300)}"
        listed = actions.setdefault(session_id, [])
        if action not in listed:
            listed.append(action)
    out = []
    for session_id, agent, objective, final_answer, step_count, tools_used, reward, version in rows:
        tools = ", ".join(tools_used) or "none"
        answer = _clip(final_answer or "", 200)
        summary = f"solved in {step_count} steps using {tools}; final answer: {answer}"
        out.append(SuccessPattern(session_id=session_id, agent_name=agent, objective=objective,
                                  actions=actions.get(session_id, []), summary=summary, reward=float(reward),
                                  reward_version=version, keywords=keywords(objective)))
    return out


def store_patterns(client: Client, patterns: Iterable[SuccessPattern]) -> int:
    """Insert (or replace, per session_id) the patterns; returns how many were written."""
    now = datetime.now(UTC)
    rows = [[p.session_id, p.agent_name, p.objective, p.actions, p.summary, p.reward, p.reward_version,
             p.keywords, EXTRACTOR_VERSION, now] for p in patterns]
    if rows:
        client.insert("success_patterns", rows, column_names=COLUMNS)
    return len(rows)


def refresh_patterns(client: Client, *, min_reward: float = 0.7, reward_version: str = "") -> int:
    """Extract and store in one go (idempotent: run it as often as you like)."""
    return store_patterns(client, extract_patterns(client, min_reward=min_reward, reward_version=reward_version))


def load_patterns(client: Client, *, min_reward: float = 0.0, limit: int = 5000) -> list[SuccessPattern]:
    """Stored patterns (one per session), best reward first."""
    rows = client.query(
        "SELECT session_id, agent_name, objective, actions, summary, reward, reward_version, keywords "
        "FROM success_patterns FINAL WHERE reward >= {min_reward:Float64} "
        "ORDER BY reward DESC, session_id LIMIT {limit:UInt32}",
        parameters={"min_reward": min_reward, "limit": limit}).result_rows
    return [SuccessPattern(session_id=r[0], agent_name=r[1], objective=r[2], actions=list(r[3]), summary=r[4],
                           reward=float(r[5]), reward_version=r[6], keywords=list(r[7])) for r in rows]


def rank_patterns(objective: str, patterns: Sequence[SuccessPattern], *, k: int = 3,
                  min_similarity: float = 0.1) -> list[ScoredPattern]:
    """The ``k`` patterns most similar to ``objective`` by TF-IDF cosine, at least ``min_similarity``."""
    query = set(keywords(objective))
    if not query or not patterns or k <= 0:
        return []
    docs = [set(p.keywords or keywords(p.objective)) for p in patterns]
    n = len(docs)
    df: dict[str, int] = {}
    for doc in docs:
        for term in doc:
            df[term] = df.get(term, 0) + 1
    idf = {term: math.log((1 + n) / (1 + df.get(term, 0))) + 1 for term in query | set(df)}
    q_norm = math.sqrt(sum(idf[t] ** 2 for t in query))
    scored = []
    for pattern, doc in zip(patterns, docs, strict=True):
        if not doc:
            continue
        dot = sum(idf[t] ** 2 for t in query & doc)
        sim = dot / (q_norm * math.sqrt(sum(idf[t] ** 2 for t in doc)))
        if sim >= min_similarity:
            scored.append(ScoredPattern(pattern=pattern, similarity=round(sim, 6)))
    scored.sort(key=lambda s: (-s.similarity, -s.pattern.reward, s.pattern.session_id))
    distinct: dict[tuple[str, tuple[str, ...]], ScoredPattern] = {}
    for s in scored:  # runs that did the same thing for the same objective are one pattern (the best-ranked)
        distinct.setdefault((s.pattern.objective, tuple(s.pattern.actions)), s)
    return list(distinct.values())[:k]


def find_similar_patterns(client: Client, objective: str, *, k: int = 3, min_similarity: float = 0.1,
                          min_reward: float = 0.0) -> list[ScoredPattern]:
    """Stored patterns most similar to a new objective (see ``rank_patterns``)."""
    return rank_patterns(objective, load_patterns(client, min_reward=min_reward), k=k, min_similarity=min_similarity)
