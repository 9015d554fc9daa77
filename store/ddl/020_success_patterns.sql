-- Success patterns: what worked in high-reward trajectories, for the runner's prompts.
-- Derived from trajectories/steps/rewards by agents.patterns; re-extraction replaces a session's row.
CREATE TABLE IF NOT EXISTS success_patterns
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
ENGINE = ReplacingMergeTree(extracted_at)
ORDER BY session_id;
