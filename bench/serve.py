"""`art bench serve`: completion tokens/s of `art serve` with concurrent chats vs sequential generate().

Both sides use the same model object in the same process: the baseline is ``model.generate()``
(greedy, KV cache, one chat after another, as a script would call it); the served side sends the
same chats at once through the real openai client to the real HTTP server (continuous batching).
Every chat produces exactly ``max_tokens`` tokens on both sides (``min_new_tokens`` /
vLLM's ``ignore_eos``), so the token counts are equal and the ratio compares like with like. Each
repeat runs both sides, alternating which goes first; medians and the spread are printed (bench.measure),
the ratio is refused when a baseline run measured under 5 s, and the last line is one JSON object.
The host is shared: wall-clock numbers move with other load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import describe, emit, progress, ratio_fields, spread

PROMPTS = [
    "Compute 17 * 23 + 4 and answer with the number.",
    "Look up the population of Lyon, then double it.",
    "Read notes.txt and tell me the second line.",
    "What is 3 * 4? Use the calculator tool.",
    "Plan three steps to count the words in report.md.",
    "Convert 250 kilometres to miles and round to one decimal.",
    "Write 'done' to status.txt, then confirm what you wrote.",
    "Find the larger of 7 * 8 and 60 - 3, and explain.",
]
SYSTEM = "You are a careful agent. Reply with one Thought line, then one Action line."


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]


def _baseline(engine: Any, chats: int, max_tokens: int) -> tuple[int, float]:
    import torch

    tokens = 0
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(chats):
            ids = torch.tensor([engine.encode_chat(_messages(i))])
            out = engine.base.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                       min_new_tokens=max_tokens, do_sample=False, pad_token_id=engine.pad)
            tokens += out.shape[1] - ids.shape[1]
    return tokens, time.perf_counter() - started


async def _served(url: str, chats: int, max_tokens: int) -> tuple[int, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)

    async def one(i: int) -> int:
        reply = await client.chat.completions.create(model="base", messages=_messages(i),  # type: ignore[arg-type]
                                                     max_tokens=max_tokens, temperature=0,
                                                     extra_body={"ignore_eos": True})
        return reply.usage.completion_tokens if reply.usage else 0

    started = time.perf_counter()
    counts = await asyncio.gather(*(one(i) for i in range(chats)))
    seconds = time.perf_counter() - started
    await client.close()
    return sum(counts), seconds


def bench_serve(model_dir: Path, *, chats: int = 8, max_tokens: int = 64, repeats: int = 3,
                say: Callable[[str], None] = progress) -> dict[str, Any]:
    """Run the benchmark; returns (and the CLI prints) the summary."""
    from serving.engine import Engine
    from serving.server import Server

    say(f"loading {model_dir}")
    engine = Engine.load(model_dir, max_batch=max(chats, 1))
    runs: dict[str, list[float]] = {"served": [], "baseline": []}
    baseline_s: list[float] = []
    tokens: dict[str, int] = {}
    with Server(engine, lambda: [], model_dir, default_max_tokens=max_tokens) as server:
        asyncio.run(_served(server.url, 2, 2))  # warm-up: first-call allocations on both paths
        _baseline(engine, 1, 2)
        for r in range(repeats):
            order = ("baseline", "served") if r % 2 == 0 else ("served", "baseline")
            for side in order:
                n, seconds = (_baseline(engine, chats, max_tokens) if side == "baseline"
                              else asyncio.run(_served(server.url, chats, max_tokens)))
                tokens[side] = n
                runs[side].append(n / seconds)
                if side == "baseline":
                    baseline_s.append(seconds)
                say(f"run {r + 1}/{repeats} {side:>8}: {n} tokens in {seconds:6.1f} s = {n / seconds:7.1f} tok/s")
        peak = engine.peak_batch

    served, baseline = spread(runs["served"]), spread(runs["baseline"])
    say(describe("served tok/s", served))
    say(describe("baseline tok/s", baseline))
    return {"tokens_per_s": round(served.median, 2), "baseline_tokens_per_s": round(baseline.median, 2),
            **ratio_fields(served.median, baseline.median, min(baseline_s)),
            "baseline_seconds": round(min(baseline_s), 2),
            "spread": {"tokens_per_s": served.model_dump(), "baseline_tokens_per_s": baseline.model_dump()},
            "completion_tokens": tokens["served"], "baseline_completion_tokens": tokens["baseline"],
            "chats": chats, "max_tokens": max_tokens, "repeats": repeats, "peak_batch": peak,
            "engine": "transformers+peft, continuous batching", "model": str(model_dir)}


def default_model_dir() -> Path:
    """The converted SmolLM2 of `art models base` under the configured data dir."""
    from config.settings import load_config
    from trainer.basemodel import converted_dir

    return converted_dir(load_config().storage.resolved_models_dir())


if __name__ == "__main__":
    emit(bench_serve(default_model_dir()))
