-- Cluster variant of store/ddl/002_steps.sql: replicated local table + Distributed table of the same name.
CREATE TABLE IF NOT EXISTS steps_local ON CLUSTER '{cluster}'
(
    session_id String,
    seq Int64,
    step_number Int64,
    agent_name LowCardinality(String),
    observation String,
    thought String,
    action_kind LowCardinality(String),
    tool LowCardinality(String),
    action_text String,
    action_input String,
    tool_result Nullable(String),
    error Nullable(String),
    reflection Nullable(String),
    step_reward Nullable(Float64),
    step_metadata Map(String, String),
    timestamp DateTime64(6, 'UTC'),
    execution_time_ms Int64,
    tokens Int64,
    cost Float64,
    event_id UUID,
    emitted_at DateTime64(6, 'UTC'),
    log_epoch UInt64,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/steps_local', '{replica}')
ORDER BY (session_id, seq)
SETTINGS replicated_deduplication_window = 10000;

-- Reads and writes go through `steps`: rows of one session_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS steps ON CLUSTER '{cluster}' AS steps_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'steps_local', cityHash64(session_id));
