"""The OpenAI wire format as capture reads it: bodies, streams, conversation identity, steps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.capture.chat import (
    MappingError,
    StreamAccumulator,
    completion_from_body,
    extend_key,
    new_turn,
    prefix_keys,
)
from agents.capture.steps import (
    Completion,
    ToolCall,
    Usage,
    call_cost,
    call_steps,
    closing_status,
    error_step,
    with_outcome,
    with_tool_result,
)
from schemas.models import Answer, CompletionTrace, SessionStatus, UseTool

AT = datetime(2026, 12, 1, tzinfo=UTC)
BODY = {"id": "r1", "model": "m-1", "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": {"content": [
            {"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.0}]}, "token_ids": [7, 8],
            "message": {"role": "assistant", "content": "let me look", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}},
                {"id": "c2", "type": "function", "function": {"name": "calc", "arguments": '{"e": "1+1"}'}}]}}]}


def test_a_body_reads_into_a_completion() -> None:
    c = completion_from_body(BODY)
    assert (c.model, c.content, c.finish_reason, c.response_id) == ("m-1", "let me look", "tool_calls", "r1")
    assert c.tool_calls == (ToolCall("c1", "search", '{"q": "x"}'), ToolCall("c2", "calc", '{"e": "1+1"}'))
    assert c.usage == Usage(11, 4, 15) and c.logprobs == (-0.5, -1.0) and c.token_ids == (7, 8)


def test_token_ids_come_from_vllm_tokens_or_its_token_ids_field_and_logprobs_need_them() -> None:
    def trace(logprobs: object, **extra: object) -> tuple[object, object]:
        body = {"choices": [{"message": {"content": "x"}, "logprobs": logprobs, **extra}]}
        c = completion_from_body(body)
        return c.token_ids, c.logprobs

    vllm = {"content": [{"token": "token_id:11", "logprob": -0.25}, {"token": "token_id:12", "logprob": -2.0}]}
    assert trace(vllm) == ((11, 12), (-0.25, -2.0))
    assert trace({"content": [{"token": "a", "logprob": -0.5}]}, token_ids=[5]) == ((5,), (-0.5,))
    assert trace(None, token_ids=[5, 6]) == ((5, 6), None)
    assert trace({"content": [{"token": "a", "logprob": -0.5}]}) == (None, None)  # no ids: nothing to align to
    [step] = call_steps("q", completion_from_body({"model": "m", "choices": [
        {"message": {"content": "x"}, "logprobs": vllm}]}), at=AT, execution_time_ms=1, cost=0)
    assert step.step.completions == [CompletionTrace(purpose="chat", model="m", token_ids=[11, 12],
                                                     logprobs=[-0.25, -2.0])]


@pytest.mark.parametrize(("body", "reason"), [
    ([], "response is not a JSON object"), ({"choices": []}, "response has no choices"),
    ({"choices": [{"message": None}]}, "response choice has no message"),
    ({"choices": [{"message": {"tool_calls": [{"id": "x"}]}}]}, "tool call without a function"),
])
def test_unreadable_bodies_say_why(body: object, reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        completion_from_body(body)


def test_a_stream_folds_into_the_same_completion() -> None:
    acc = StreamAccumulator()
    chunks = [
        {"id": "r1", "model": "m-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "let "}}]},
        {"id": "r1", "choices": [{"index": 0, "delta": {"content": "me look"},
                                  "logprobs": {"content": [{"token": "a", "logprob": -0.5}]}, "token_ids": [7]}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "function": {"name": "search", "arguments": '{"q": '}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "c2", "function": {"name": "calc", "arguments": '{"e": "1+1"}'}}]},
            "logprobs": {"content": [{"token": "b", "logprob": -1.0}]}, "token_ids": [8]}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}},
    ]
    for chunk in chunks:
        acc.feed(chunk)
    assert acc.result() == completion_from_body(BODY)


def test_an_empty_stream_is_an_error() -> None:
    with pytest.raises(MappingError, match="stream ended without a chunk"):
        StreamAccumulator().result()


def test_conversation_keys_survive_how_sdks_echo_an_answer() -> None:
    """The key after an answer equals the key of the next request's prefix, whichever way the
    client echoes the assistant message (extra fields, null content, reordered keys)."""
    history = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    completion = completion_from_body(BODY)
    key = extend_key(prefix_keys(history)[-1], completion)
    echoes = [
        {"role": "assistant", "content": "let me look", "tool_calls": BODY["choices"][0]["message"]["tool_calls"]},
        {"tool_calls": [{"function": {"arguments": '{"q":"x"}', "name": "search"}, "id": "c1", "type": "function"},
                        {"function": {"arguments": '{ "e" : "1+1" }', "name": "calc"}, "id": "c2", "type": "function"}],
         "content": [{"type": "text", "text": "let me look"}], "role": "assistant", "refusal": None, "audio": None},
    ]
    for echo in echoes:
        keys = prefix_keys([*history, echo, {"role": "tool", "tool_call_id": "c1", "content": "found"}])
        assert keys[3] == key
    assert prefix_keys([*history, {"role": "assistant", "content": "other"}])[3] != key


def test_a_turn_splits_tool_results_from_what_the_model_observes() -> None:
    turn = new_turn([{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
                     {"role": "assistant", "content": "ignored"},
                     {"role": "tool", "tool_call_id": "c1", "content": "r"}])
    assert turn.tool_results == {"c1": "r"}
    assert (turn.observation, turn.system_prompt, turn.first_user) == ("q1\ntool result: r", "sys", "q1")


def test_a_call_with_tool_calls_is_one_use_tool_step_each_usage_on_the_first() -> None:
    steps = call_steps("obs", completion_from_body(BODY), at=AT, execution_time_ms=12, cost=0.5)
    assert [(s.step.action, s.tool_call_id, s.step.tokens, s.step.cost, s.step.execution_time_ms) for s in steps] == [
        (UseTool(tool="search", input='{"q": "x"}'), "c1", 15, 0.5, 12),
        (UseTool(tool="calc", input='{"e": "1+1"}'), "c2", 0, 0.0, 0)]
    first = steps[0].step
    assert (first.observation, first.thought, first.action_input) == ("obs", "let me look", '{"q": "x"}')
    assert first.step_metadata == {"model": "m-1", "finish_reason": "tool_calls", "prompt_tokens": "11",
                                   "completion_tokens": "4", "response_id": "r1", "tool_call_id": "c1",
                                   "parallel_call": "1/2"}
    done = with_tool_result(steps[1], "2")
    assert (done.step.tool_result, done.step.error) == ("2", None)


def test_a_final_message_is_an_answer_and_ends_the_run_as_succeeded() -> None:
    [step] = call_steps("q", Completion(model="m", content="42", usage=Usage(3, 1, 4)), at=AT,
                        execution_time_ms=5, cost=0.0)
    assert step.step.action == Answer(text="42") and step.step.tokens == 4
    rewarded = with_outcome(step, reward=0.75, outcome="correct")
    assert (rewarded.step.step_reward, rewarded.step.step_metadata["outcome"]) == (0.75, "correct")
    assert closing_status(step.step) is SessionStatus.succeeded
    assert closing_status(error_step("q", "upstream answered 500: x", at=AT, execution_time_ms=1).step) \
        is SessionStatus.error
    assert closing_status(call_steps("q", completion_from_body(BODY), at=AT, execution_time_ms=1,
                                     cost=0)[0].step) is SessionStatus.cancelled
    assert closing_status(None) is SessionStatus.cancelled


def test_cost_prefers_the_upstreams_price_then_the_configured_one() -> None:
    prices = {"m": [1.0, 2.0]}
    assert call_cost("m", Usage(1_000_000, 500_000, 1_500_000), prices) == 2.0
    assert call_cost("m", Usage(10, 10, 20, cost=0.25), prices) == 0.25
    assert call_cost("other", Usage(10, 10, 20), prices) == 0.0
