"""The recording proxy with the real `openai` package (sync, async, streaming, tool calls) in front of
a local OpenAI-compatible server, through `art up`: the exact rows in ClickHouse, token counts equal
to the upstream's usage, and the API key in no row and no log."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import uuid
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI, OpenAI

from bench.openai_upstream import OpenAIUpstream, usage_for
from tests.capture.conftest import KEY, rows
from tests.ingest.helpers import wait_for
from tests.ingest.stack import RunningStack

TOOLS = [{"type": "function", "function": {"name": n, "description": n, "parameters": {"type": "object"}}}
         for n in ("calc", "search", "lookup")]
STEP_COLUMNS = ("step_number, action_kind, tool, action_text, action_input, observation, tool_result, error, "
                "step_reward, tokens, step_metadata")


def trajectory(ch: Any, sid: str, timeout_s: float = 60) -> dict[str, Any]:
    sql = ("SELECT agent_name, group_id, objective, model, status, final_answer, closed_by, step_count, total_tokens, "
           "tools_used, error_count, agent_config FROM trajectories WHERE session_id = {sid:String}")
    found = wait_for(lambda: rows(ch, sql, sid=sid), timeout_s=timeout_s)
    assert len(found) == 1, found
    return found[0]


def steps(ch: Any, sid: str, n: int) -> list[dict[str, Any]]:
    sql = f"SELECT {STEP_COLUMNS} FROM steps WHERE session_id = {{sid:String}} ORDER BY seq"
    wait_for(lambda: len(rows(ch, sql, sid=sid)) >= n)
    found = rows(ch, sql, sid=sid)
    assert len(found) == n, found
    return found


def complete(stack: RunningStack, sid: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{stack.info.proxy_url}/art/sessions/{sid}/complete", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_sync_tool_call_then_answer_named_by_headers(capture_stack: RunningStack, ch: Any,
                                                     upstream: OpenAIUpstream) -> None:
    sid = f"sync-{uuid.uuid4().hex[:8]}"
    client = OpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0, default_headers={
        "X-ART-Session": sid, "X-ART-Agent": "calc-agent", "X-ART-Group": "g-sync", "X-ART-Objective": "add 2 and 2"})
    messages: list[Any] = [{"role": "system", "content": "use the tools"},
                           {"role": "user", "content": 'call:calc:{"expr": "2+2"}'}]
    first = client.chat.completions.create(model="scripted-1", messages=messages, tools=TOOLS)
    [call] = first.choices[0].message.tool_calls or []
    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "4"}]
    second = client.chat.completions.create(model="scripted-1", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "result: 4"
    assert first.usage is not None and second.usage is not None
    assert complete(capture_stack, sid, reward=1.0, outcome="correct") == {
        "session_id": sid, "status": "succeeded", "final_answer": "result: 4", "steps": 2, "outcome_recorded": True}

    assert trajectory(ch, sid) == {
        "agent_name": "calc-agent", "group_id": "g-sync", "objective": "add 2 and 2", "model": "scripted-1",
        "status": "succeeded", "final_answer": "result: 4", "closed_by": "completed", "step_count": 2,
        "total_tokens": first.usage.total_tokens + second.usage.total_tokens, "tools_used": ["calc"],
        "error_count": 0, "agent_config": {"source": "proxy", "system_prompt": "use the tools"}}
    use, answer = steps(ch, sid, 2)
    assert {k: v for k, v in use.items() if k != "step_metadata"} == {
        "step_number": 0, "action_kind": "use_tool", "tool": "calc", "action_text": '{"expr": "2+2"}',
        "action_input": '{"expr": "2+2"}', "observation": 'call:calc:{"expr": "2+2"}', "tool_result": "4",
        "error": None, "step_reward": None, "tokens": first.usage.total_tokens}
    assert {k: use["step_metadata"][k] for k in ("model", "prompt_tokens", "completion_tokens", "tool_call_id")} == {
        "model": "scripted-1", "prompt_tokens": str(first.usage.prompt_tokens),
        "completion_tokens": str(first.usage.completion_tokens), "tool_call_id": call.id}
    assert {k: v for k, v in answer.items() if k != "step_metadata"} == {
        "step_number": 1, "action_kind": "answer", "tool": "", "action_text": "result: 4", "action_input": "",
        "observation": "tool result: 4", "tool_result": None, "error": None, "step_reward": 1.0,
        "tokens": second.usage.total_tokens}
    assert answer["step_metadata"]["outcome"] == "correct"
    forwarded = [r["headers"] for r in upstream.requests if r["body"]["messages"][-1].get("content") == "4"][-1]
    assert forwarded["Authorization"] == f"Bearer {KEY}" and not any(h.lower().startswith("x-art") for h in forwarded)


async def _stream(client: AsyncOpenAI, messages: list[Any]) -> tuple[str, str, dict[int, dict[str, str]], list[Any]]:
    """(session id, content, tool calls by index, usages seen) of one streamed call."""
    raw = await client.chat.completions.with_raw_response.create(model="scripted-1", messages=messages, tools=TOOLS,
                                                                 stream=True)
    content, calls, usages = "", {}, []
    stream = raw.parse()
    stream = await stream if inspect.isawaitable(stream) else stream  # openai 1.x: a coroutine; 3.x: the stream
    async for chunk in stream:
        if chunk.usage is not None:
            usages.append(chunk.usage)
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = slot["id"] or tc.id or ""
                slot["name"] = slot["name"] or (tc.function.name if tc.function else "") or ""
                slot["arguments"] += (tc.function.arguments if tc.function else "") or ""
    return raw.headers["x-art-session"], content, calls, usages


async def test_async_streaming_parallel_tool_calls_found_by_conversation_prefix(
        capture_stack: RunningStack, ch: Any, upstream: OpenAIUpstream) -> None:
    client = AsyncOpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0,
                         default_headers={"X-ART-Agent": "stream-agent"})
    messages: list[Any] = [{"role": "user", "content": 'call:search:{"q": "oslo"}|calc:{"expr": "1+1"}'}]
    expected = [usage_for(messages)]
    sid, content, calls, usages = await _stream(client, messages)
    assert content == "" and [c["name"] for c in calls.values()] == ["search", "calc"] and usages == []
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls.values()]})
    messages += [{"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
                 {"role": "tool", "tool_call_id": calls[1]["id"], "content": "2"}]
    expected.append(usage_for(messages))
    again, content, _, usages = await _stream(client, messages)
    assert (again, content, usages) == (sid, "result: 2", [])  # the usage the proxy asked for stays hidden
    injected = [r["body"].get("stream_options") for r in upstream.requests[-2:]]
    assert injected == [{"include_usage": True}] * 2
    assert complete(capture_stack, sid, status="succeeded")["final_answer"] == "result: 2"

    t = trajectory(ch, sid)
    assert (t["agent_name"], t["objective"], t["status"], t["step_count"], t["tools_used"], t["total_tokens"]) == (
        "stream-agent", 'call:search:{"q": "oslo"}|calc:{"expr": "1+1"}', "succeeded", 3, ["search", "calc"],
        sum(u["total_tokens"] for u in expected))
    got = [(s["action_kind"], s["tool"], s["action_text"], s["tool_result"], s["tokens"]) for s in steps(ch, sid, 3)]
    assert got == [("use_tool", "search", '{"q": "oslo"}', "sunny", expected[0]["total_tokens"]),
                   ("use_tool", "calc", '{"expr": "1+1"}', "2", 0),
                   ("answer", "", "result: 2", None, expected[1]["total_tokens"])]


def test_prefix_identity_across_turns_and_completion_by_idle_timeout(capture_stack: RunningStack, ch: Any) -> None:
    client = OpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0)
    messages: list[Any] = [{"role": "user", "content": f"hello {uuid.uuid4().hex[:6]}"}]
    raw = client.chat.completions.with_raw_response.create(model="scripted-1", messages=messages, stream=True,
                                                           stream_options={"include_usage": True})
    chunks = list(raw.parse())
    usage = [c.usage for c in chunks if c.usage is not None]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(usage) == 1 and text == f"echo: {messages[0]['content']}"  # asked for: shown
    sid = raw.headers["x-art-session"]
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": "again"}]
    second = client.chat.completions.with_raw_response.create(model="scripted-1", messages=messages)
    assert second.headers["x-art-session"] == sid
    reply = second.parse()
    assert reply.usage is not None
    t = trajectory(ch, sid)  # nobody completes it: the proxy's idle timeout (4 s) does
    assert (t["agent_name"], t["status"], t["final_answer"], t["closed_by"], t["step_count"], t["total_tokens"]) == (
        "proxy", "succeeded", "echo: again", "completed", 2, usage[0].total_tokens + reply.usage.total_tokens)
    assert [(s["action_text"], s["observation"]) for s in steps(ch, sid, 2)] == [
        (text, messages[0]["content"]), ("echo: again", "again")]


def test_token_ids_and_logprobs_are_recorded_when_the_upstream_returns_them(capture_stack: RunningStack,
                                                                           ch: Any) -> None:
    sid = f"trace-{uuid.uuid4().hex[:8]}"
    client = OpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0,
                    default_headers={"X-ART-Session": sid})
    ask = {"logprobs": True, "extra_body": {"return_token_ids": True}}
    messages: list[Any] = [{"role": "user", "content": "one two"}]
    plain = client.chat.completions.create(model="scripted-1", messages=messages, **ask)
    assert [t.logprob for t in plain.choices[0].logprobs.content] == [-0.125, -0.25, -0.375]
    messages += [plain.choices[0].message, {"role": "user", "content": "three"}]
    streamed = list(client.chat.completions.create(model="scripted-1", messages=messages, stream=True, **ask))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "echo: three"
    client.chat.completions.create(model="scripted-1", messages=[*messages, {"role": "user", "content": "no trace"}])
    complete(capture_stack, sid)
    trajectory(ch, sid)
    sql = "SELECT completions FROM steps WHERE session_id = {s:String} ORDER BY seq"
    wait_for(lambda: len(rows(ch, sql, s=sid)) >= 3)  # the trajectory's steps may land in a later sink batch
    got = rows(ch, sql, s=sid)
    trace = {"purpose": "chat", "model": "scripted-1"}
    assert [r["completions"] for r in got] == [
        [{**trace, "token_ids": [1000, 1001, 1002], "logprobs": [-0.125, -0.25, -0.375]}],
        [{**trace, "token_ids": [1000, 1001], "logprobs": [-0.125, -0.25]}], []]


def test_an_upstream_error_is_an_error_step_and_the_agent_sees_it_unchanged(capture_stack: RunningStack,
                                                                            ch: Any) -> None:
    sid = f"err-{uuid.uuid4().hex[:8]}"
    client = OpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0,
                    default_headers={"X-ART-Session": sid})
    try:
        client.chat.completions.create(model="scripted-1", messages=[{"role": "user", "content": "fail:500"}])
        raise AssertionError("the upstream's 500 did not reach the client")
    except openai.InternalServerError as exc:
        assert exc.status_code == 500 and "scripted failure fail:500" in str(exc)
    complete(capture_stack, sid, status="failed")
    t = trajectory(ch, sid)
    assert (t["status"], t["error_count"], t["step_count"], t["final_answer"]) == ("failed", 1, 1, None)
    [step] = steps(ch, sid, 1)
    assert (step["action_kind"], step["action_text"], step["error"]) == (
        "think", "model call failed", "upstream answered 500: scripted failure fail:500")


def test_other_paths_pass_through(capture_stack: RunningStack) -> None:
    client = OpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list()] == ["scripted-1"]


def test_bad_requests_are_forwarded_or_refused_and_dead_lettered(capture_stack: RunningStack, ch: Any) -> None:
    url = capture_stack.info.proxy_url
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    marker = uuid.uuid4().hex[:8]
    not_json = httpx.post(f"{url}/chat/completions", content=f"not json {marker}", headers=headers)
    assert not_json.status_code == 400 and "invalid JSON body" in not_json.json()["error"]["message"]
    too_big = httpx.post(f"{url}/chat/completions", headers=headers,
                         content=json.dumps({"messages": [{"role": "user", "content": "x" * 300_000}]}))
    assert too_big.status_code == 413
    assert httpx.post(f"{url}/art/sessions/nope-{marker}/complete", json={}).status_code == 404
    bad_body = json.dumps({"reward": "high", "marker": marker})
    bad = httpx.post(f"{url}/art/sessions/x/complete", content=bad_body)
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("complete: invalid body")
    expected = {f"not json {marker}": "proxy: chat request not recorded: Expecting value: line 1 column 1 (char 0)",
                bad_body: bad.json()["error"]["message"]}
    sql = "SELECT raw, reason FROM dead_letters WHERE source_topic = 'capture.proxy'"
    wait_for(lambda: {r["raw"] for r in rows(ch, sql)} >= set(expected))
    got = {r["raw"]: r["reason"] for r in rows(ch, sql)}
    assert {raw: got[raw] for raw in expected} == expected
    assert "proxy: request body larger than 262144 bytes" in got.values()
    assert httpx.get(f"{url}/art/health").json()["ok"] is True


async def test_fifty_concurrent_conversations_are_fifty_exact_trajectories(capture_stack: RunningStack,
                                                                          ch: Any) -> None:
    client = AsyncOpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0, timeout=60,
                         default_headers={"X-ART-Group": (group := f"g50-{uuid.uuid4().hex[:6]}")})

    async def conversation(i: int) -> tuple[str, int]:
        messages: list[Any] = [{"role": "user", "content": f'call:lookup:{{"id": {i}, "g": "{group}"}}'}]
        tokens = usage_for(messages)["total_tokens"]
        first = await client.chat.completions.with_raw_response.create(model="scripted-1", messages=messages,
                                                                        tools=TOOLS)
        reply = first.parse()
        reply = await reply if inspect.isawaitable(reply) else reply
        call = (reply.choices[0].message.tool_calls or [])[0]
        messages += [reply.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": f"value-{i}"}]
        tokens += usage_for([m if isinstance(m, dict) else m.model_dump() for m in messages])["total_tokens"]
        second = await client.chat.completions.with_raw_response.create(model="scripted-1", messages=messages,
                                                                         tools=TOOLS)
        assert second.headers["x-art-session"] == first.headers["x-art-session"]
        answer = second.parse()
        answer = await answer if inspect.isawaitable(answer) else answer
        assert answer.choices[0].message.content == f"result: value-{i}"
        sid = first.headers["x-art-session"]
        done = await http.post(f"{capture_stack.info.proxy_url}/art/sessions/{sid}/complete", json={})
        assert done.status_code == 200, done.text
        return sid, tokens

    async with httpx.AsyncClient(timeout=60) as http:  # one pool, patient: 2 shared cores serve all 50
        results = await asyncio.gather(*(conversation(i) for i in range(50)))
    assert len({sid for sid, _ in results}) == 50
    sql = ("SELECT session_id, final_answer, status, closed_by, step_count, total_tokens, tools_used "
           "FROM trajectories WHERE group_id = {g:String}")
    wait_for(lambda: len(rows(ch, sql, g=group)) >= 50, timeout_s=120)
    got = {r.pop("session_id"): r for r in rows(ch, sql, g=group)}
    assert len(got) == 50
    for i, (sid, tokens) in enumerate(results):
        assert got[sid] == {"final_answer": f"result: value-{i}", "status": "succeeded", "closed_by": "completed",
                            "step_count": 2, "total_tokens": tokens, "tools_used": ["lookup"]}
    ids = [sid for sid, _ in results]
    counts = rows(ch, "SELECT (SELECT count() FROM steps WHERE session_id IN {ids:Array(String)}) AS steps, "
                      "(SELECT count() FROM session_events WHERE session_id IN {ids:Array(String)}) AS events", ids=ids)
    assert counts == [{"steps": 100, "events": 200}]


def test_the_readme_langgraph_example_is_one_session(capture_stack: RunningStack, ch: Any) -> None:
    """README, "bring your own agent": LangGraph's prebuilt ReAct agent on ChatOpenAI(base_url=proxy),
    no headers but the agent's name. LangChain re-serialises tool arguments, and the conversation is
    still recognised."""
    import warnings

    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent's move to langchain.agents
        from langgraph.prebuilt import create_react_agent

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    agent_name = f"lg-{uuid.uuid4().hex[:6]}"
    llm = ChatOpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, model="scripted-1",
                     default_headers={"X-ART-Agent": agent_name})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = create_react_agent(llm, tools=[multiply])
    out = agent.invoke({"messages": [("user", 'call:multiply:{"a":6,"b":7}')]})
    assert out["messages"][-1].content == "result: 42"
    sql = ("SELECT session_id, status, final_answer, step_count, tools_used FROM trajectories "
           "WHERE agent_name = {a:String}")
    [t] = wait_for(lambda: rows(ch, sql, a=agent_name), timeout_s=60)  # completed by the idle timeout
    assert (t["status"], t["final_answer"], t["step_count"], t["tools_used"]) == (
        "succeeded", "result: 42", 2, ["multiply"])
    assert [(s["action_kind"], s["action_text"], s["tool_result"]) for s in steps(ch, t["session_id"], 2)] == [
        ("use_tool", '{"a":6,"b":7}', "42"), ("answer", "result: 42", None)]


def test_the_api_key_is_in_no_row_and_no_log(capture_stack: RunningStack, ch: Any) -> None:
    """Runs last in this module: every call above carried the key."""
    client = OpenAI(base_url=capture_stack.info.proxy_url, api_key=KEY, max_retries=0,
                    default_headers={"X-ART-Session": (sid := f"key-{uuid.uuid4().hex[:6]}")})
    client.chat.completions.create(model="scripted-1", messages=[{"role": "user", "content": "ping"}])
    complete(capture_stack, sid)
    trajectory(ch, sid)
    secret = re.escape(KEY.split("-SECRET-")[1])
    tables = ch.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                      "AND engine NOT LIKE '%View%' AND engine != 'Null'").result_rows
    assert ("steps",) in tables and ("dead_letters",) in tables
    for (table,) in tables:
        dump = repr(ch.query(f"SELECT * FROM `{table}`").result_rows)
        assert not re.search(secret, dump), f"the key is stored in {table}"
    data_dir = capture_stack.data_dir
    files = [p for p in data_dir.rglob("*") if p.is_file() and "clickhouse" not in p.parts]
    files.append(capture_stack.log)
    assert any(p.name == "proxy.log" for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), f"the key is in {path}"
