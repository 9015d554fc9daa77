"""LLM judge against a real scripted HTTP endpoint on loopback: answers, retries, errors, cache."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from judges import AsyncJudge, ChatClient, JudgeCache, JudgeError, LLMJudge, ScoreParseError
from tests.judges.builders import answer, tool, trajectory
from tests.judges.llm_server import Reply, ScriptedLLM

GOOD = json.dumps({"task_completion": 0.9, "solution_quality": "8/10", "efficiency": 0.5, "tool_usage": 1,
                   "reasoning_coherence": 0.7, "error_recovery": 1.0, "step_scores": [0.6, 1.0],
                   "reasoning": "correct and direct"})


def run():  # type: ignore[no-untyped-def]
    return trajectory([tool("search", "capital of France", thought="search it", result="Paris"),
                       answer("Paris")], criteria=["Paris"], final_answer="Paris")


def make_judge(llm: ScriptedLLM, **kw) -> LLMJudge:  # type: ignore[no-untyped-def]
    timeout = kw.pop("timeout_s", 5.0)
    return LLMJudge(ChatClient(llm.base_url, "judge-model", api_key="sk-test", timeout_s=timeout), **kw)


def test_scores_request_and_overall(llm: ScriptedLLM) -> None:
    llm.script(GOOD)
    j = make_judge(llm, version="3").judge(run())
    assert (j.task_completion, j.solution_quality, j.efficiency) == (0.9, 0.8, 0.5)
    assert j.overall == pytest.approx(0.4 * 0.9 + 0.2 * 0.8 + 0.2 * 0.5 + 0.1 * 1 + 0.1 * 0.7)
    assert j.step_rewards == [0.6, 1.0]
    assert (j.judge_name, j.judge_version, j.reasoning) == ("llm", "3", "correct and direct")
    [req] = llm.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "judge-model"
    user = req["body"]["messages"][1]["content"]
    assert "Objective: What is the capital of France?" in user and "use_tool search(capital of France)" in user


def test_unreadable_answer_is_retried_with_correction(llm: ScriptedLLM) -> None:
    llm.script("It looks pretty good to me!", GOOD)
    j = make_judge(llm).judge(run())
    assert j.task_completion == 0.9
    assert len(llm.requests) == 2
    retry = llm.requests[1]["body"]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "It looks pretty good to me!"}
    assert "could not be used (no score for task_completion)" in retry[-1]["content"]


def test_retries_exhausted_raise_score_parse_error(llm: ScriptedLLM) -> None:
    llm.script("nope", '{"task_completion": 1}')
    with pytest.raises(ScoreParseError, match="gave up after 2 attempts") as info:
        make_judge(llm, max_retries=1).judge(run())
    assert "JSON object lacks solution_quality" in str(info.value)
    assert len(llm.requests) == 2


def test_timeout_raises_judge_error(llm: ScriptedLLM) -> None:
    llm.script(Reply(GOOD, delay_s=0.5))
    with pytest.raises(JudgeError, match=r"timed out after 0\.1s"):
        make_judge(llm, timeout_s=0.1).judge(run())


def test_http_error_raises_judge_error(llm: ScriptedLLM) -> None:
    llm.script(Reply("model overloaded", status=503))
    with pytest.raises(JudgeError, match=r"answered HTTP 503.*model overloaded"):
        make_judge(llm).judge(run())


def test_unreachable_endpoint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", "m", timeout_s=2)
    with pytest.raises(JudgeError, match="unreachable: ConnectError"):
        LLMJudge(client).judge(run())
    with pytest.raises(JudgeError, match="no LLM endpoint configured"):
        ChatClient("", "m")


def test_cache_prevents_second_call(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script(GOOD, GOOD)
    path = tmp_path / "judge-cache.sqlite"
    judge = make_judge(llm, cache=JudgeCache(path=path))
    first, again = judge.judge(run()), judge.judge(run())
    assert len(llm.requests) == 1
    assert first.model_dump(exclude={"judged_at"}) == again.model_dump(exclude={"judged_at"})
    # a fresh process (new cache object, same file) does not ask again either
    make_judge(llm, cache=JudgeCache(path=path)).judge(run())
    assert len(llm.requests) == 1
    # a new judge version is a new question
    make_judge(llm, version="2", cache=JudgeCache(path=path)).judge(run())
    assert len(llm.requests) == 2


async def test_async_judge(llm: ScriptedLLM) -> None:
    llm.script("score: 7", GOOD)
    judge = make_judge(llm)
    assert isinstance(judge, AsyncJudge)
    j = await judge.ajudge(run())
    assert j.efficiency == 0.5 and len(llm.requests) == 2
    await judge.ajudge(run())
    assert len(llm.requests) == 2  # cached


async def test_async_timeout(llm: ScriptedLLM) -> None:
    llm.script(Reply(GOOD, delay_s=0.5))
    with pytest.raises(JudgeError, match="timed out"):
        await make_judge(llm, timeout_s=0.1).ajudge(run())
