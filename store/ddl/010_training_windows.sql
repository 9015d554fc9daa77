-- Reward-filtered windows the trainer pulled: the query, its bound parameters and the exact
-- session ids, so any training run can be reproduced from its window_id.
CREATE TABLE IF NOT EXISTS training_windows
(
    window_id String,
    query String,
    params String,
    reward_version LowCardinality(String),
    session_ids Array(String),
    trajectory_count Int64,
    step_count Int64,
    group_count Int64,
    created_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY window_id;
