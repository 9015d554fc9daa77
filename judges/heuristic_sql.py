"""The heuristic judge and heuristic RULER as ClickHouse SQL, for bulk re-scoring.

Same formulas as ``judges.heuristic`` and ``judges.ruler`` (read their docstrings), evaluated column
by column over a table of decoded trajectories instead of one Python object at a time: a replay of
the whole history costs a few SQL statements. Parity with the Python judge is a tested contract:
every metric, the overall score, step rewards, event ids and reasoning texts are equal (floating
point operations are done in the same order); RULER advantages agree to 1e-9 (ClickHouse's
compensated mean and stable std instead of Python's exact ``fmean``/``pstdev``). Whitespace
stripping uses Python's ``str.isspace`` set; lower-casing is ``lowerUTF8`` (ICU), which can differ
from ``str.lower`` on rare characters such as 'İ'.

Groups for RULER: trajectories sharing a ``group_id`` in (completed_at, session_id) order, cut into
chunks of ``rollouts_per_group``; a trajectory without a group is a group of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from judges.contract import ID_NAMESPACE, JudgeWeights
from judges.ruler import ADVANTAGE_EPS, RULER_WEIGHTS
from schemas.criteria import FILE_PREFIX, LEADING_DOTS, TRAILING_NEWLINES
from store.clickhouse import literal

USE_TOOL = "Tuple(kind String, tool String, input String)"
ANSWER = "Tuple(kind String, text String)"
# Every character for which Python's str.isspace() is true, as an RE2 class.
PY_SPACE = (r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
            r"\x{205f}\x{3000}]")
EXPLAIN = ("completion %.2f (%s); efficiency %.2f (%d steps vs estimate %d); tool usage %.2f (%d calls, "
           "%d redundant); errors recovered %d/%d; coherence %.2f; quality %.2f")
# Columns the measurement needs from a trajectory (names of TrajectoryCompleted fields).
INPUT_FIELDS = ("session_id", "agent_name", "group_id", "success_criteria", "steps", "final_answer", "status",
                "closed_by", "missing_seqs", "completed_at")


def py_strip(expr: str) -> str:
    """SQL for Python's ``expr.strip()``."""
    return f"replaceRegexpAll({expr}, {literal(f'^{PY_SPACE}+|{PY_SPACE}+$')}, '')"


def not_blank(expr: str) -> str:
    """SQL for ``expr.strip() != ''`` (a character outside Python's whitespace)."""
    return f"match({expr}, {literal('[^' + PY_SPACE[1:])})"


def json_string(expr: str) -> str:
    """SQL for ``json.dumps(expr, ensure_ascii=False)`` without the quotes (escapes only what JSON must)."""
    per_byte = (r"arrayStringConcat(arrayMap(c -> multiIf(c = '\"', '\\\"', c = '\\', '\\\\', "
                r"c = '\n', '\\n', c = '\r', '\\r', c = '\t', '\\t', c = '\b', '\\b', c = '\f', '\\f', "
                rf"c < ' ', concat('\\u00', lower(hex(c))), c), splitByRegexp('', {expr})))")
    return f"if(match({expr}, '[\\\\x00-\\\\x1f\"\\\\\\\\]'), {per_byte}, {expr})"


def stable_id_sql(expr: str, *rest: str) -> str:
    """SQL for ``judges.contract.stable_id(expr, *rest)``: uuid5 of the JSON list, as a UUID."""
    suffix = json.dumps(["", *rest], ensure_ascii=False)[len('[""'):]
    text = f"concat('[\"', {json_string(expr)}, '\"', {literal(suffix)})"
    digest = f"substring(SHA1(concat(unhex('{ID_NAMESPACE.hex}'), {text})), 1, 16)"
    return (f"toUUID(UUIDNumToString(toFixedString(concat(substring({digest}, 1, 6), "
            f"char(bitOr(bitAnd(reinterpretAsUInt8(substring({digest}, 7, 1)), 15), 80)), substring({digest}, 8, 1), "
            f"char(bitOr(bitAnd(reinterpretAsUInt8(substring({digest}, 9, 1)), 63), 128)), "
            f"substring({digest}, 10, 7)), 16)))")


def same_path(expr: str) -> str:
    """SQL for ``schemas.criteria.same_path``."""
    return f"replaceRegexpOne({py_strip(expr)}, {literal(LEADING_DOTS)}, '')"


def write_path(expr: str) -> str:
    """SQL for the path of ``schemas.criteria.write_target(expr)`` ('' where Python refuses the input)."""
    s = py_strip(expr)
    return (f"if(startsWith({s}, '{{'), JSONExtractString({s}, 'path'), "
            f"if(position({expr}, '\\n') > 0, substring({expr}, 1, position({expr}, '\\n') - 1), {expr}))")


def write_content(expr: str) -> str:
    """SQL for the content of ``schemas.criteria.write_target(expr)``."""
    s = py_strip(expr)
    from_json = (f"if(JSONType({s}, 'content') = 'String', JSONExtractString({s}, 'content'), "
                 f"if(JSONHas({s}, 'content'), JSONExtractRaw({s}, 'content'), ''))")
    return (f"if(startsWith({s}, '{{'), {from_json}, "
            f"if(position({expr}, '\\n') > 0, substring({expr}, position({expr}, '\\n') + 1), ''))")


def file_met(criterion: str) -> str:
    """SQL for ``schemas.criteria.file_criterion_met`` of the stripped ``criterion`` over ``written``
    (the (path, content) of each error-free file_write call, in order)."""
    body = f"substring({criterion}, {len(FILE_PREFIX) + 1})"
    eq = f"position({body}, '=')"
    path = same_path(f"substring({body}, 1, {eq} - 1)")
    expected = py_strip(f"substring({body}, {eq} + 1)")
    last = f"arrayFilter(x -> x.1 = {path}, written)"
    return (f"({eq} > 0 AND {path} != '' AND notEmpty({last}) AND "
            f"replaceRegexpOne({last}[-1].2, {literal(TRAILING_NEWLINES)}, '') = {expected})")


def measure_select(stage: str, in_range: str = "1") -> str:
    """Every heuristic metric and count of each staged record; ``in_range`` flags the rows to score."""
    strip = py_strip
    return f"""
SELECT session_id, agent_name, group_id, closed_by, length(missing_seqs) AS missing_n, completed_at,
       toUInt8({in_range}) AS in_range, src_epoch, src_partition, src_offset, tc, sq, eff, tu, coh, er,
       step_rewards, action_set,
       if(crit_n > 0, concat(toString(matched), '/', toString(crit_n), ' criteria matched'),
          'no criteria, judged by status') AS crit_text,
       printf({literal(EXPLAIN)}, tc, crit_text, eff, n, est, tu, k, redundant, recovered, errors, coh, sq) AS explain
FROM (
  SELECT *,
    steps.seq AS seqs,
    arraySort((v, q) -> q, steps.step.thought, seqs) AS thoughts,
    arraySort((v, q) -> q, steps.step.action, seqs) AS actions,
    arraySort((v, q) -> q, steps.step.error, seqs) AS step_errors,
    toInt64(length(seqs)) AS n,
    arrayMap(a -> variantType(a) = '{USE_TOOL}', actions) AS is_call,
    arrayMap(a -> variantElement(a, '{USE_TOOL}'), actions) AS call_t,
    arrayMap(x -> (x.tool, x.input), call_t) AS pair_all,
    arrayFilter((p, c) -> c, pair_all, is_call) AS pairs,
    toInt64(length(pairs)) AS k,
    arrayMap(p -> p.1, pairs) AS tools,
    arrayMap(e -> ifNull(e, '') != '', step_errors) AS err,
    arrayMap(a -> variantType(a) = '{ANSWER}', actions) AS is_answer,
    arrayMap(t -> {not_blank('t')}, thoughts) AS has_thought,
    arrayMap(a -> variantElement(a, '{ANSWER}').text, arrayFilter((a, y) -> y, actions, is_answer)) AS answer_texts,
    {strip("if(ifNull(final_answer, '') != '', ifNull(final_answer, ''), "
           "if(empty(answer_texts), '', answer_texts[-1]))")} AS answer,
    ifNull(status, '') = 'succeeded' AS succeeded,
    arrayFilter(c -> {not_blank('c')}, success_criteria) AS crit,
    toInt64(length(crit)) AS crit_n,
    arrayMap(x -> x.input, arrayFilter((x, c, e) -> c AND x.tool = 'file_write' AND NOT e, call_t, is_call, err))
      AS writes,
    arrayMap(w -> ({same_path(write_path('w'))}, {write_content('w')}), writes) AS written,
    toInt64(arrayCount(c -> multiIf(startsWith({strip('c')}, {literal(FILE_PREFIX)}), {file_met(strip('c'))},
                                    startsWith({strip('c')}, '='),
                                    lowerUTF8(answer) = lowerUTF8({strip(f"substring({strip('c')}, 2)")}),
                                    position(lowerUTF8(answer), lowerUTF8({strip('c')})) > 0), crit)) AS matched,
    if(crit_n > 0, matched / crit_n, if(succeeded, 1., 0.)) AS tc,
    greatest(toInt64(3), 2 * toInt64(length(success_criteria)) + 1) AS est,
    if(n > 0, least(1., est / n), 0.) AS eff,
    k - toInt64(length(arrayDistinct(pairs))) AS redundant,
    toInt64(arrayCount((a, b) -> a != b, arrayPopBack(tools), arrayPopFront(tools))) AS switches,
    if(k > 1, greatest(toInt64(0), switches - (toInt64(length(arrayDistinct(tools))) - 1)) / (k - 1), 0.) AS thrash,
    if(k > 0, (1 - redundant / k) * (1 - 0.5 * thrash), 1.) AS tu,
    toInt64(arrayCount(e -> e, err)) AS errors,
    arrayLastIndex(e -> NOT e, err) AS last_ok,
    toInt64(if(succeeded, arrayCount((e, i) -> e AND i < last_ok, err, arrayEnumerate(err)), 0)) AS recovered,
    if(errors > 0, recovered / errors, 1.) AS er,
    if(n > 0, arrayCount(h -> h, has_thought) / n, 0.) AS with_thought,
    if(k > 0, arrayCount((h, c, t) -> c AND position(lowerUTF8(h), lowerUTF8(t.tool)) > 0,
                         thoughts, is_call, call_t) / k, 1.) AS named,
    if(answer != '', 1., 0.) AS answered,
    (with_thought + named + answered) / 3 AS coh,
    if(k > 0, arrayCount((e, c) -> c AND NOT e, err, is_call) / k, 1.) AS tool_ok,
    if(answer != '', 0.5 * tc + 0.5 * tool_ok, 0.) AS sq,
    arrayEnumerateUniq(arrayMap((p, c, i) -> if(c, (p.1, p.2, 0), ('', '', i)), pair_all, is_call,
                                arrayEnumerate(seqs))) AS occurrence,
    arrayMap((e, c, o, a, h) -> if(e, 0., if(c AND o > 1, 0.2, if(a, tc, if(h, 1., 0.5)))),
             err, is_call, occurrence, is_answer, has_thought) AS step_rewards,
    arrayDistinct(arrayMap(p -> sipHash64(p.1, {strip('p.2')}), pairs)) AS action_set
  FROM {stage}
)"""


def unique_select(measured: str) -> str:
    """The rows to score: in range, one per session (the first record by log position wins)."""
    return (f"SELECT * FROM {measured} WHERE in_range = 1 ORDER BY src_epoch, src_partition, src_offset "
            "LIMIT 1 BY session_id")


# What RULER needs of each measured trajectory, in tuple order (quality: the judge's overall score).
MEMBER = ("session_id", "tc", "eff", "quality", "action_set", "completed_at")


@dataclass(frozen=True)
class SqlHeuristic:
    """Builds the INSERT … SELECT statements that judge and reward a measured table."""

    judge_name: str
    judge_version: str
    weights: JudgeWeights
    reward_version: str | None
    rollouts_per_group: int

    def overall(self) -> str:
        w = [repr(float(x)) for x in self.weights.values]
        if len(w) == 6:
            terms = ["tc", "sq", "eff", "tu", "coh", "er"]
        else:
            terms = ["tc", "(sq * (0.5 + 0.5 * er))", "eff", "tu", "coh"]
        combined = " + ".join(f"{wi} * {t}" for wi, t in zip(w, terms, strict=True))
        return f"least(1., greatest(0., ({combined}) / {float(sum(self.weights.values))!r}))"

    def judgments(self, measured: str, topic: str) -> str:
        name, version = literal(self.judge_name), literal(self.judge_version)
        return f"""
INSERT INTO judgments (session_id, agent_name, group_id, judge_name, judge_version, task_completion,
  solution_quality, efficiency, tool_usage, reasoning_coherence, error_recovery, overall, step_rewards, reasoning,
  judged_at, event_id, log_epoch, topic, partition, offset)
SELECT session_id, agent_name, group_id, {name}, {version}, tc, sq, eff, tu, coh, er, {self.overall()},
       step_rewards, explain, now64(6), {stable_id_sql('session_id', self.judge_name, self.judge_version)},
       src_epoch, {literal(topic)}, src_partition, src_offset
FROM {measured}
WHERE session_id NOT IN (SELECT session_id FROM judgments WHERE judge_name = {name} AND judge_version = {version})"""

    def rewards(self, measured: str, topic: str) -> str:
        """Group-relative rewards: chunks scored on light columns, joined back for the texts."""
        assert self.reward_version is not None
        version, size = literal(self.reward_version), self.rollouts_per_group
        w = {k: repr(v) for k, v in RULER_WEIGHTS.items()}
        members = {name: name for name in MEMBER} | {"quality": self.overall()}

        def f(name: str, var: str = "a") -> str:
            return f"{var}.{MEMBER.index(name) + 1}"

        a_set = f("action_set")
        jaccard = (f"if(length({a_set}) + length(b) = 0, 1., length(arrayIntersect({a_set}, b))"
                   f" / (length({a_set}) + length(b) - length(arrayIntersect({a_set}, b))))")
        return f"""
INSERT INTO rewards (session_id, agent_name, group_id, reward_version, total, success, efficiency, quality, novelty,
  reasoning, confidence, advantage, group_size, assigned_at, event_id, log_epoch, topic, partition, offset)
SELECT u.session_id, u.agent_name, u.group_id, {version}, r.total, u.tc, u.eff, r.quality, r.novelty,
       printf('rank %d/%d: success %.2f, efficiency %.2f, quality %.2f, novelty %.2f -> total %.3f; %s',
              r.rank, r.gn, u.tc, u.eff, r.quality, r.novelty, r.total, u.explain),
       if(u.closed_by = 'completed' AND u.missing_n = 0, 1., 0.5) * least(1., 0.5 + 0.125 * (r.gn - 1)),
       r.advantage, r.gn, now64(6), {stable_id_sql('u.session_id', self.reward_version)}, u.src_epoch,
       {literal(topic)}, u.src_partition, u.src_offset
FROM {measured} AS u INNER JOIN (
  SELECT {f('session_id', 'x')} AS sid, quality, novelty, total, gn, 1 + arrayCount(t -> t > total, totals) AS rank,
         if(equal, 0., (total - tmean) / (tstd + {ADVANTAGE_EPS!r})) AS advantage
  FROM (
    SELECT chunk, toInt64(length(chunk)) AS gn,
      arrayMap(a -> {a_set}, chunk) AS sets,
      arrayMap((a, i) -> if(gn < 2, 0., 1. - arrayMax(arrayMap((b, j) -> if(j = i, -inf, {jaccard}), sets,
                                                                arrayEnumerate(sets)))),
               chunk, arrayEnumerate(chunk)) AS novelties,
      arrayMap(a -> {f('quality')}, chunk) AS qualities,
      arrayMap((a, q, v) -> {w['success']} * {f('tc')} + {w['efficiency']} * {f('eff')} + {w['quality']} * q
                            + {w['novelty']} * v, chunk, qualities, novelties) AS totals,
      arraySum(totals) / gn AS tmean, sqrt(arraySum(arrayMap(t -> (t - tmean) * (t - tmean), totals)) / gn) AS tstd,
      arrayMax(totals) = arrayMin(totals) AS equal
    FROM (
      SELECT arrayJoin(arrayMap(c -> arraySlice(ms, c * {size} + 1, {size}),
                                range(toUInt64(intDiv(length(ms) + {size} - 1, {size}))))) AS chunk
      FROM (SELECT arraySort(a -> ({f('completed_at')}, {f('session_id')}),
                             groupArray(tuple({", ".join(members[m] for m in MEMBER)}))) AS ms
            FROM {measured} GROUP BY ifNull(group_id, concat('\\0', session_id)), group_id IS NULL)))
  ARRAY JOIN chunk AS x, qualities AS quality, novelties AS novelty, totals AS total
) AS r ON u.session_id = r.sid
WHERE u.session_id NOT IN (SELECT session_id FROM rewards WHERE reward_version = {version})"""
