-- Cluster variant of store/ddl/020_success_patterns.sql: replicated local table + Distributed table of the same name.
-- Success patterns: what worked in high-reward trajectories, for the runner's prompts.
-- Derived from trajectories/steps/rewards by agents.patterns; re-extraction replaces a session's row.
CREATE TABLE IF NOT EXISTS success_patterns_local ON CLUSTER '{cluster}'
(
    session_id String,
    agent_name LowCardinality(String),
    objective String,
    actions Array(String),
    summary String,
    reward Float64,
    reward_version LowCardinality(String),
    keywords Array(String),
    extractor_version LowCardinality(String),
    extracted_at DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/success_patterns_local', '{replica}', extracted_at)
ORDER BY session_id;

-- Reads and writes go through `success_patterns`: rows of one session_id always land on the same shard, so
-- ReplacingMergeTree and FINAL deduplicate within a shard exactly as on one server.
CREATE TABLE IF NOT EXISTS success_patterns ON CLUSTER '{cluster}' AS success_patterns_local
ENGINE = Distributed('{cluster}', currentDatabase(), 'success_patterns_local', cityHash64(session_id));
