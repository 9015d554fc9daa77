CREATE TABLE IF NOT EXISTS rewards
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
ENGINE = ReplacingMergeTree
ORDER BY (session_id, reward_version)
SETTINGS non_replicated_deduplication_window = 10000;
