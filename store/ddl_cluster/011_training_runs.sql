-- Cluster variant of store/ddl/011_training_runs.sql: replicated local table + Distributed table of the same name.
-- One row per training run; the latest updated_at wins (running -> finished / failed).
CREATE TABLE IF NOT EXISTS training_runs_local ON CLUSTER '{cluster}'
(
    run_id String,
    window_id String,
    model_id String,
    objective LowCardinality(String),
    specialization LowCardinality(String),
    status LowCardinality(String),
    config String,
    steps Int64,
    metrics Map(String, Float64),
    error String,
    started_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/training_runs_local', '{replica}', updated_at)
ORDER BY run_id;

-- Reads and writes go through `training_runs`: rows of one run_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS training_runs ON CLUSTER '{cluster}' AS training_runs_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'training_runs_local', cityHash64(run_id));
