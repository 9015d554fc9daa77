-- Cluster variant of store/ddl/003_trajectories.sql: replicated local table + Distributed table of the same name.
CREATE TABLE IF NOT EXISTS trajectories_local ON CLUSTER '{cluster}'
(
    session_id String,
    agent_name LowCardinality(String),
    group_id Nullable(String),
    objective String,
    model LowCardinality(String),
    agent_config Map(String, String),
    success_criteria Array(String),
    final_answer Nullable(String),
    status LowCardinality(String),
    closed_by LowCardinality(String),
    missing_seqs Array(Int64),
    started_at DateTime64(6, 'UTC'),
    completed_at DateTime64(6, 'UTC'),
    step_count Int64,
    total_tokens Int64,
    total_cost Float64,
    tools_used Array(String),
    error_count Int64,
    execution_time_ms Int64,
    efficiency Float64,
    payload String,
    event_id UUID,
    log_epoch UInt64,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/trajectories_local', '{replica}')
ORDER BY session_id
SETTINGS replicated_deduplication_window = 10000;

-- Reads and writes go through `trajectories`: rows of one session_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS trajectories ON CLUSTER '{cluster}' AS trajectories_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'trajectories_local', cityHash64(session_id));
