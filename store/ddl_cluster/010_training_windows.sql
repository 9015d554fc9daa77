-- Cluster variant of store/ddl/010_training_windows.sql: replicated local table + Distributed table of the same name.
-- Reward-filtered windows the trainer pulled: the query, its bound parameters and the exact
-- session ids, so any training run can be reproduced from its window_id.
CREATE TABLE IF NOT EXISTS training_windows_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/training_windows_local', '{replica}')
ORDER BY window_id;

-- Reads and writes go through `training_windows`: rows of one window_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS training_windows ON CLUSTER '{cluster}' AS training_windows_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'training_windows_local', cityHash64(window_id));
