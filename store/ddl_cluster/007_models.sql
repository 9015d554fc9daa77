-- Cluster variant of store/ddl/007_models.sql: replicated local table + Distributed table of the same name.
-- Model registry: one row per adapter; the latest updated_at wins, champion is a flag.
CREATE TABLE IF NOT EXISTS models_local ON CLUSTER '{cluster}'
(
    model_id String,
    name String,
    base_model String,
    objective LowCardinality(String),
    specialization LowCardinality(String),
    window_id String,
    path String,
    metrics Map(String, Float64),
    is_champion UInt8,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/models_local', '{replica}', updated_at)
ORDER BY model_id;

-- Reads and writes go through `models`: rows of one model_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS models ON CLUSTER '{cluster}' AS models_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'models_local', cityHash64(model_id));
