-- Cluster variant of store/ddl/006_dead_letters.sql: replicated local table + Distributed table of the same name.
CREATE TABLE IF NOT EXISTS dead_letters_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/dead_letters_local', '{replica}')
ORDER BY event_id
SETTINGS replicated_deduplication_window = 10000;

-- Reads and writes go through `dead_letters`: rows of one event_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS dead_letters ON CLUSTER '{cluster}' AS dead_letters_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'dead_letters_local', cityHash64(event_id));
