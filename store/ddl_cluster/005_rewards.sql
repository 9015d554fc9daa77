-- Cluster variant of store/ddl/005_rewards.sql: replicated local table + Distributed table of the same name.
CREATE TABLE IF NOT EXISTS rewards_local ON CLUSTER '{cluster}'
(
    session_id String,
    agent_name LowCardinality(String),
    group_id Nullable(String),
    reward_version LowCardinality(String),
    total Float64,
    success Float64,
    efficiency Float64,
    quality Float64,
    novelty Float64,
    reasoning String,
    confidence Float64,
    advantage Float64,
    group_size Int64,
    assigned_at DateTime64(6, 'UTC'),
    event_id UUID,
    log_epoch UInt64,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/rewards_local', '{replica}')
ORDER BY (session_id, reward_version)
SETTINGS replicated_deduplication_window = 10000;

-- Reads and writes go through `rewards`: rows of one session_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS rewards ON CLUSTER '{cluster}' AS rewards_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'rewards_local', cityHash64(session_id));
