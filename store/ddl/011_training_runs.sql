-- One row per training run; the latest updated_at wins (running -> finished / failed).
CREATE TABLE IF NOT EXISTS training_runs
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
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY run_id;
