CREATE TABLE IF NOT EXISTS dead_letters
(
    event_id UUID,
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    raw String,
    reason String,
    occurred_at DateTime64(6, 'UTC'),
    log_epoch UInt64,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 10000;
