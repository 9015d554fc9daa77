-- One row per evaluation of a model on the held-out suite (`art eval`, each `art loop` round).
-- The model's registry row carries the latest numbers; this table keeps every evaluation (the curve).
CREATE TABLE IF NOT EXISTS evaluations
(
    eval_id String,
    model_id String,
    split LowCardinality(String),
    suite LowCardinality(String),
    missions Int64,
    successes Int64,
    metrics Map(String, Float64),
    session_ids Array(String),
    loop_id String,
    round Int64,
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY eval_id;
