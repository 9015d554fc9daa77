-- Cluster variant of store/ddl/001_session_events.sql: replicated local table + Distributed table of the same name.
-- Mirror of every valid session event: the source of truth the stream repairs from.
CREATE TABLE IF NOT EXISTS session_events_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/session_events_local', '{replica}')
ORDER BY (session_id, seq)
SETTINGS replicated_deduplication_window = 10000;

-- Reads and writes go through `session_events`: rows of one session_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS session_events ON CLUSTER '{cluster}' AS session_events_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'session_events_local', cityHash64(session_id));
