CREATE TABLE IF NOT EXISTS judgments
(
    session_id String,
    agent_name LowCardinality(String),
    group_id Nullable(String),
    judge_name LowCardinality(String),
    judge_version LowCardinality(String),
    task_completion Float64,
    solution_quality Float64,
    efficiency Float64,
    tool_usage Float64,
    reasoning_coherence Float64,
    error_recovery Float64,
    overall Float64,
    step_rewards Array(Float64),
    reasoning String,
    judged_at DateTime64(6, 'UTC'),
    event_id UUID,
    log_epoch UInt64,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (session_id, judge_name, judge_version)
SETTINGS non_replicated_deduplication_window = 10000;
