"""`art serve` answers the real openai client (sync, async, streaming) and hot-swaps champions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from config.settings import ArtConfig, StorageConfig
from tests.serving.support import prompt_ids, recompute
from trainer.config import TrainingConfig
from trainer.registry import promote
from trainer.runs import run_training
from trainer.windows import WindowFilter

pytestmark = pytest.mark.train
MESSAGES = [{"role": "system", "content": "You are a careful agent."},
            {"role": "user", "content": "Objective: compute 17 * 23. Reply with Thought and Action lines."}]


def ids_of(content: Any) -> list[int]:
    return [int(t.token.removeprefix("token_id:")) for t in content]


def test_sync_client_with_token_ids_and_logprobs(server: Any, tiny_model: Path) -> None:
    client = openai.OpenAI(base_url=server.url, api_key="unused")
    reply = client.chat.completions.create(model="base", messages=MESSAGES, max_tokens=12, temperature=0,
                                           logprobs=True, top_logprobs=3,
                                           extra_body={"return_tokens_as_token_ids": True})
    choice = reply.choices[0]
    content = choice.logprobs.content
    ids = ids_of(content)
    prompt = prompt_ids(tiny_model, MESSAGES)
    assert reply.model == "base" and reply.usage.prompt_tokens == len(prompt)
    assert reply.usage.completion_tokens == len(ids) == len(content) and 1 <= len(ids) <= 12
    assert [t.logprob for t in content] == pytest.approx(recompute(tiny_model, prompt, ids), abs=1e-4)
    assert all(len(t.top_logprobs) == 3 and t.top_logprobs[0].logprob >= t.logprob - 1e-6 for t in content)
    assert all(t.top_logprobs[0].token.startswith("token_id:") for t in content)
    assert content[0].logprob == pytest.approx(content[0].top_logprobs[0].logprob, abs=1e-6)  # greedy: the top
    engine = server.engine
    assert choice.message.content == engine.decode(ids) and choice.finish_reason in ("stop", "length")
    # without the extension, tokens are their text
    plain = client.chat.completions.create(model="base", messages=MESSAGES, max_tokens=12, temperature=0,
                                           logprobs=True)
    assert [t.token for t in plain.choices[0].logprobs.content] == [engine.token_text(i) for i in ids]
    assert plain.choices[0].message.content == choice.message.content


async def test_async_clients_concurrently_get_what_they_would_get_alone(server: Any) -> None:
    client = openai.AsyncOpenAI(base_url=server.url, api_key="unused")

    async def one(i: int, seed: int | None = None) -> str:
        messages = [{"role": "user", "content": f"Observation: step {i} " * (i + 1)}]
        reply = await client.chat.completions.create(model="base", messages=messages, max_tokens=6 + i,
                                                     temperature=0.9 if seed is not None else 0, seed=seed)
        return reply.choices[0].message.content or ""

    alone = [await one(i) for i in range(4)]
    together = await asyncio.gather(*(one(i) for i in range(4)), one(0, seed=11), one(0, seed=11))
    assert list(together[:4]) == alone
    assert together[4] == together[5]  # a seed reproduces its sample whatever shares the batch
    both = await client.chat.completions.create(model="base", messages=MESSAGES, max_tokens=5, temperature=1.0,
                                                n=2, seed=5)
    assert [c.index for c in both.choices] == [0, 1] and both.usage.completion_tokens <= 10
    await client.close()


def test_streaming_sends_the_same_text_in_pieces(server: Any) -> None:
    client = openai.OpenAI(base_url=server.url, api_key="unused")
    whole = client.chat.completions.create(model="base", messages=MESSAGES, max_tokens=10, temperature=0)
    chunks = list(client.chat.completions.create(model="base", messages=MESSAGES, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True},
                                                 logprobs=True, extra_body={"return_tokens_as_token_ids": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    streamed_ids = [int(t.token.removeprefix("token_id:")) for c in chunks if c.choices and c.choices[0].logprobs
                    for t in c.choices[0].logprobs.content]
    assert len(streamed_ids) == whole.usage.completion_tokens == chunks[-1].usage.completion_tokens
    assert chunks[-1].choices == []


def test_a_reply_continues_an_assistant_prefix(server: Any, tiny_model: Path) -> None:
    """vLLM's continue_final_message: the reply is what follows the open assistant message (exploration)."""
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    messages = [*MESSAGES, {"role": "assistant", "content": "calculator:"}]
    reply = client.chat.completions.create(model="base", messages=messages, max_tokens=8, temperature=0,  # type: ignore[arg-type]
                                           logprobs=True, extra_body={"return_tokens_as_token_ids": True,
                                                                      "continue_final_message": True,
                                                                      "add_generation_prompt": False})
    prompt = prompt_ids(tiny_model, messages, continue_final=True)
    assert prompt != prompt_ids(tiny_model, MESSAGES) and reply.usage.prompt_tokens == len(prompt)
    assert server.engine.decode(prompt).endswith("calculator:")  # the turn is left open, not closed
    content = reply.choices[0].logprobs.content
    ids = ids_of(content)
    assert [t.logprob for t in content] == pytest.approx(recompute(tiny_model, prompt, ids), abs=1e-4)
    with pytest.raises(openai.BadRequestError, match="continue_final_message needs add_generation_prompt: false "
                                                     "and an assistant message last"):
        client.chat.completions.create(model="base", messages=MESSAGES, extra_body={  # type: ignore[arg-type]
            "continue_final_message": True, "add_generation_prompt": False})


def test_models_and_errors(server: Any) -> None:
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    assert {"base", "champion"} <= {m.id for m in client.models.list().data}
    with pytest.raises(openai.NotFoundError, match="model 'nope' not found: use base, champion"):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="temperature: Input should be less than or equal to 2"):
        client.chat.completions.create(model="base", messages=MESSAGES, temperature=5)
    with pytest.raises(openai.BadRequestError, match=r"unsupported request field\(s\): tools"):
        client.chat.completions.create(model="base", messages=MESSAGES, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    with pytest.raises(openai.BadRequestError, match=r"prompt has \d+ tokens; this model's context is 1024"):
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": "Thought: " * 1500}])
    bad = httpx.post(f"{server.url}/chat/completions", content=b"{not json", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_a_promoted_adapter_is_served_by_the_next_request(server: Any, tiny_model: Path, registry_store: Any,
                                                          tmp_path: Path, clickhouse_dsn: str,
                                                          registry_db: str) -> None:
    from tests.trainer.rows import insert_runs
    from trainer import synthetic

    insert_runs(registry_store, synthetic.runs(12, 4, seed=3))
    art = ArtConfig(storage=StorageConfig(data_dir=tmp_path / "art-data"), reward_threshold=0.7)
    art.clickhouse.dsn, art.clickhouse.database = clickhouse_dsn, registry_db
    cfg = TrainingConfig(model_path=str(tiny_model), learning_rate=5e-3, max_steps=6, batch_size=8, max_length=256,
                         evaluation_interval=3, checkpoint_interval=0, num_epochs=50)
    trained = run_training(art, cfg, WindowFilter(min_reward=0.7), client=registry_store, progress=False).model
    client = openai.OpenAI(base_url=server.url, api_key="unused")

    def ask(model: str) -> Any:
        return client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, temperature=0,
                                              logprobs=True, extra_body={"return_tokens_as_token_ids": True})

    deadline = time.monotonic() + 5
    while trained.model_id not in {m.id for m in client.models.list().data}:
        assert time.monotonic() < deadline, "the new model never appeared in /v1/models"
        time.sleep(0.1)
    by_id = ask(trained.model_id)
    assert by_id.model == trained.model_id and ask("champion").model == "base"  # registered, not promoted
    prompt = prompt_ids(tiny_model, MESSAGES)
    ids = ids_of(by_id.choices[0].logprobs.content)
    adapter = Path(trained.path) / "adapter"
    assert [t.logprob for t in by_id.choices[0].logprobs.content] == pytest.approx(
        recompute(tiny_model, prompt, ids, adapter), abs=1e-4)

    promote(registry_store, trained.model_id)
    promoted_at = time.monotonic()
    while (reply := ask("champion")).model != trained.model_id:
        assert time.monotonic() - promoted_at < 2.0, "the promotion was not picked up within 2 s"
        time.sleep(0.05)
    assert reply.choices[0].message.content == by_id.choices[0].message.content
    assert ask("champion:research").model == trained.model_id  # no research champion: the general one
    reload = httpx.post(f"{server.url.removesuffix('/v1')}/admin/reload", timeout=10).json()
    assert reload["champions"] == {"general": trained.model_id}
