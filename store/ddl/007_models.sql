-- Model registry: one row per adapter; the latest updated_at wins, champion is a flag.
CREATE TABLE IF NOT EXISTS models
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
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY model_id;

-- What a model was checked against: the held-out session ids of its window (never trained on) and the
-- reward a trajectory needed to enter its training data. Existing stores get the columns.
ALTER TABLE models ADD COLUMN IF NOT EXISTS heldout_session_ids Array(String) AFTER window_id;
ALTER TABLE models ADD COLUMN IF NOT EXISTS reward_threshold Float64 AFTER heldout_session_ids;
