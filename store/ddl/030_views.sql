-- Analyst views over trajectories, steps, judgments and rewards (`art sql`, `art report`).
-- Scores are versioned, so views either keep the version as a column or take it as a parameter:
--   SELECT * FROM judge_version_comparison(old_judge = 'heuristic@1', new_judge = 'heuristic@2')
--   SELECT * FROM reward_version_comparison(old_version = 'ruler-heuristic@1', new_version = 'ruler-heuristic@2')

-- The most recently assigned reward of each trajectory, whatever its version.
CREATE OR REPLACE VIEW latest_rewards AS
SELECT
    r.session_id AS session_id,
    argMax(r.agent_name, r.assigned_at) AS agent_name,
    argMax(r.group_id, r.assigned_at) AS group_id,
    argMax(r.reward_version, r.assigned_at) AS reward_version,
    argMax(r.total, r.assigned_at) AS total,
    argMax(r.advantage, r.assigned_at) AS advantage,
    argMax(r.confidence, r.assigned_at) AS confidence,
    argMax(r.group_size, r.assigned_at) AS group_size,
    max(r.assigned_at) AS assigned_at,
    uniqExact(r.reward_version) AS versions
FROM rewards AS r
GROUP BY r.session_id;

-- Each trajectory's reward under one version, deduplicated (a replay's version covers what it re-scored):
--   SELECT * FROM latest_rewards_of(version = 'ruler-heuristic@2')
CREATE OR REPLACE VIEW latest_rewards_of AS
SELECT session_id, agent_name, group_id, reward_version, total, success, advantage, confidence, group_size,
       assigned_at
FROM rewards FINAL
WHERE reward_version = {version:String};

-- Reward per agent and day (the trajectory's completion day, not the scoring day, so replays line up).
CREATE OR REPLACE VIEW reward_by_agent_day AS
SELECT
    r.reward_version AS reward_version,
    r.agent_name AS agent_name,
    toDate(t.completed_at) AS day,
    count() AS trajectories,
    avg(r.total) AS avg_reward,
    min(r.total) AS min_reward,
    max(r.total) AS max_reward,
    avg(r.success) AS avg_success,
    countIf(t.status = 'succeeded') / count() AS success_rate
FROM rewards AS r FINAL
INNER JOIN trajectories AS t FINAL ON t.session_id = r.session_id
GROUP BY reward_version, agent_name, day;

-- Every judge version present, so an analyst can pick two to compare.
CREATE OR REPLACE VIEW judge_versions AS
SELECT
    concat(judge_name, '@', judge_version) AS judge,
    judge_name,
    judge_version,
    count() AS trajectories,
    avg(overall) AS avg_overall,
    min(judged_at) AS first_judged,
    max(judged_at) AS last_judged
FROM judgments FINAL
GROUP BY judge_name, judge_version;

-- Old vs new overall score per trajectory judged by both judge versions ('name@version').
CREATE OR REPLACE VIEW judge_version_comparison AS
SELECT
    o.session_id AS session_id,
    o.agent_name AS agent_name,
    o.group_id AS group_id,
    o.overall AS old_score,
    n.overall AS new_score,
    n.overall - o.overall AS shift
FROM
(
    SELECT session_id, any(agent_name) AS agent_name, any(group_id) AS group_id, any(overall) AS overall
    FROM judgments WHERE concat(judge_name, '@', judge_version) = {old_judge:String} GROUP BY session_id
) AS o
INNER JOIN
(
    SELECT session_id, any(overall) AS overall
    FROM judgments WHERE concat(judge_name, '@', judge_version) = {new_judge:String} GROUP BY session_id
) AS n ON n.session_id = o.session_id;

-- Old vs new RULER total and advantage per trajectory scored under both reward versions.
CREATE OR REPLACE VIEW reward_version_comparison AS
SELECT
    o.session_id AS session_id,
    o.agent_name AS agent_name,
    o.group_id AS group_id,
    o.total AS old_total,
    n.total AS new_total,
    n.total - o.total AS shift,
    o.advantage AS old_advantage,
    n.advantage AS new_advantage
FROM
(
    SELECT session_id, any(agent_name) AS agent_name, any(group_id) AS group_id, any(total) AS total,
           any(advantage) AS advantage
    FROM rewards WHERE reward_version = {old_version:String} GROUP BY session_id
) AS o
INNER JOIN
(
    SELECT session_id, any(total) AS total, any(advantage) AS advantage
    FROM rewards WHERE reward_version = {new_version:String} GROUP BY session_id
) AS n ON n.session_id = o.session_id;

-- Per group of rollouts: members and how many succeeded.
CREATE OR REPLACE VIEW group_outcomes AS
SELECT
    assumeNotNull(group_id) AS group_id,
    count() AS members,
    countIf(status = 'succeeded') AS succeeded,
    countIf(status = 'succeeded') / count() AS success_rate,
    min(completed_at) AS first_completed,
    max(completed_at) AS last_completed
FROM (SELECT group_id, status, completed_at FROM trajectories FINAL WHERE group_id IS NOT NULL)
GROUP BY group_id;

-- Per tool: calls, calls that returned an error, and the error rate.
CREATE OR REPLACE VIEW tool_error_rates AS
SELECT
    tool,
    count() AS calls,
    countIf(ifNull(error, '') != '') AS errors,
    countIf(ifNull(error, '') != '') / count() AS error_rate,
    uniqExact(session_id) AS sessions,
    avg(execution_time_ms) AS avg_execution_ms
FROM steps FINAL
WHERE action_kind = 'use_tool'
GROUP BY tool;

-- The learning curve: every held-out evaluation in order, one row per (loop round, model version).
-- Round 0 of a loop is the starting champion; standalone `art eval` runs have an empty loop_id.
CREATE OR REPLACE VIEW learning_curve AS
SELECT
    e.loop_id AS loop_id,
    e.round AS round,
    e.model_id AS model_id,
    m.objective AS objective,
    e.missions AS missions,
    e.successes AS successes,
    e.metrics['eval_success'] AS success_rate,
    e.metrics['eval_success_lo'] AS success_lo,
    e.metrics['eval_success_hi'] AS success_hi,
    e.metrics['eval_reward'] AS mean_reward,
    e.metrics['eval_tokens_per_s'] AS tokens_per_s,
    m.is_champion AS is_champion,
    e.finished_at AS finished_at
FROM evaluations AS e FINAL
LEFT JOIN (SELECT model_id, objective, is_champion FROM models FINAL) AS m ON m.model_id = e.model_id;

-- Per agent and reward version (the runs that version scored): how many, how often they succeed, how
-- long they take (p50/p90 steps) and the average reward:
--   SELECT * FROM agent_performance WHERE reward_version = 'ruler-heuristic@1' ORDER BY success_rate DESC
CREATE OR REPLACE VIEW agent_performance AS
SELECT
    t.agent_name AS agent_name,
    r.reward_version AS reward_version,
    count() AS trajectories,
    countIf(t.status = 'succeeded') / count() AS success_rate,
    quantileExact(0.5)(t.step_count) AS p50_steps,
    quantileExact(0.9)(t.step_count) AS p90_steps,
    avg(t.step_count) AS avg_steps,
    avg(r.total) AS avg_reward
FROM trajectories AS t FINAL
INNER JOIN rewards AS r FINAL ON r.session_id = t.session_id
GROUP BY agent_name, reward_version
