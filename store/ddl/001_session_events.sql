-- Mirror of every valid session event: the source of truth the stream repairs from.
CREATE TABLE IF NOT EXISTS session_events
(
    session_id String,
    seq Int64,
    event_id UUID,
    kind LowCardinality(String),
    agent_name LowCardinality(String),
    ts DateTime64(6, 'UTC'),
    payload String,
    log_epoch UInt64,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (session_id, seq)
SETTINGS non_replicated_deduplication_window = 10000;
