CREATE TABLE IF NOT EXISTS steps
(
    session_id String,
    seq Int64,
    step_number Int64,
    agent_name LowCardinality(String),
    observation String,
    thought String,
    action_kind LowCardinality(String),
    tool LowCardinality(String),
    action_text String,
    action_input String,
    tool_result Nullable(String),
    error Nullable(String),
    reflection Nullable(String),
    step_reward Nullable(Float64),
    step_metadata Map(String, String),
    timestamp DateTime64(6, 'UTC'),
    execution_time_ms Int64,
    tokens Int64,
    cost Float64,
    completions Array(Tuple(purpose String, model String, token_ids Array(Int64), logprobs Array(Float32))),
    event_id UUID,
    emitted_at DateTime64(6, 'UTC'),
    log_epoch UInt64,
    topic LowCardinality(String),
    partition UInt32,
    offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (session_id, seq)
SETTINGS non_replicated_deduplication_window = 10000;

-- Added with StepRecorded.completions (token ids + logprobs of each LLM call): existing stores get the column.
ALTER TABLE steps ADD COLUMN IF NOT EXISTS
    completions Array(Tuple(purpose String, model String, token_ids Array(Int64), logprobs Array(Float32))) AFTER cost;
