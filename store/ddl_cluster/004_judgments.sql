-- Cluster variant of store/ddl/004_judgments.sql: replicated local table + Distributed table of the same name.
CREATE TABLE IF NOT EXISTS judgments_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/judgments_local', '{replica}')
ORDER BY (session_id, judge_name, judge_version)
SETTINGS replicated_deduplication_window = 10000;

-- Reads and writes go through `judgments`: rows of one session_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS judgments ON CLUSTER '{cluster}' AS judgments_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'judgments_local', cityHash64(session_id));
