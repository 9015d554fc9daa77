"""The engine on the tiny model: continuous batching gives exactly what one-at-a-time decoding gives."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from serving.engine import Adapter, DoneEvent, Engine, GenRequest, TokenEvent
from serving.sampling import SamplingParams
from tests.serving.support import make_adapter, prompt_ids, recompute

pytestmark = pytest.mark.train


@dataclass
class Collected:
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    done: DoneEvent | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def emit(self, event: TokenEvent | DoneEvent) -> None:
        if isinstance(event, TokenEvent):
            self.tokens.append(event.token)
            self.logprobs.append(event.logprob)
            self.text += event.text
        else:
            self.done = event
            self.finished.set()


def ask(engine: Engine, prompt: list[int], adapter: Adapter | None = None, **params: object) -> Collected:
    out = Collected()
    engine.submit(GenRequest(prompt, SamplingParams(**{"max_tokens": 12, "temperature": 0.0} | params), out.emit,
                             adapter))
    return out


def wait(*runs: Collected) -> None:
    for r in runs:
        assert r.finished.wait(60), "no answer within 60 s"


def greedy(model_dir: Path, prompt: list[int], n: int, eos: set[int], pad: int) -> list[int]:
    import torch

    from tests.serving.support import fresh_model

    with torch.no_grad():
        out = fresh_model(model_dir).generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                                              eos_token_id=sorted(eos), pad_token_id=pad)
    return out[0, len(prompt):].tolist()


def test_continuous_batching_matches_one_at_a_time_decoding(tiny_model: Path) -> None:
    engine = Engine.load(tiny_model, max_batch=4)
    prompts = [prompt_ids(tiny_model, [{"role": "user", "content": "Observation: " + "step " * (3 * i + 1)}])
               for i in range(6)]
    lengths = [5, 14, 9, 12, 7, 11]
    first = [ask(engine, p, max_tokens=n) for p, n in zip(prompts[:4], lengths[:4], strict=True)]
    engine.start()  # the four queued requests are admitted together, the last two join as rows leave
    try:
        later = [ask(engine, p, max_tokens=n) for p, n in zip(prompts[4:], lengths[4:], strict=True)]
        wait(*first, *later)
    finally:
        engine.stop()
    assert engine.peak_batch == 4
    for prompt, n, run in zip(prompts, lengths, first + later, strict=True):
        assert run.done == DoneEvent("length") or run.tokens[-1] in engine.eos
        assert run.tokens == greedy(tiny_model, prompt, n, engine.eos, engine.pad)
        assert run.logprobs == pytest.approx(recompute(tiny_model, prompt, run.tokens), abs=1e-4)
        assert run.text == engine.decode(run.tokens)


def test_stop_strings_seeds_and_limits(tiny_model: Path) -> None:
    engine = Engine.load(tiny_model).start()
    try:
        prompt = prompt_ids(tiny_model, [{"role": "user", "content": "Thought: I should compute"}])
        sampled = {"max_tokens": 16, "temperature": 1.0, "seed": 3}
        plain = ask(engine, prompt, **sampled)
        wait(plain)
        at = next(i for i in range(3, len(plain.text) - 2) if plain.text.index(plain.text[i:i + 2]) == i)
        stop = plain.text[at:at + 2]
        cut = ask(engine, prompt, stops=(stop,), **sampled)
        a, b = (ask(engine, prompt, max_tokens=10, temperature=1.0, top_p=0.9, seed=7) for _ in range(2))
        wait(cut, a, b)
    finally:
        engine.stop()
    assert cut.text == plain.text[:plain.text.index(stop)] and cut.done == DoneEvent("stop")
    assert cut.tokens == plain.tokens[:len(cut.tokens)]  # ids keep the token that completed the stop string
    assert engine.decode(cut.tokens).startswith(cut.text + stop)
    assert a.tokens == b.tokens and len(a.tokens) == 10 and a.done == DoneEvent("length")


def test_mixed_adapters_share_one_batch(tiny_model: Path, tmp_path: Path) -> None:
    one = Adapter("m-one", make_adapter(tiny_model, tmp_path / "one", seed=1))
    two = Adapter("m-two", make_adapter(tiny_model, tmp_path / "two", seed=2))
    prompt = prompt_ids(tiny_model, [{"role": "user", "content": "Action: calculator"}])
    engine = Engine.load(tiny_model, max_adapters=2)
    runs = [(None, ask(engine, prompt)), (one, ask(engine, prompt, one)), (two, ask(engine, prompt, two)),
            (one, ask(engine, prompt[1:], one))]
    engine.start()
    try:
        wait(*(r for _, r in runs))
    finally:
        engine.stop()
    assert engine.peak_batch == 4 and engine.loaded_adapters() == ["m-two", "m-one"]  # least recent first
    for adapter, run in runs:
        p = prompt[1:] if run is runs[3][1] else prompt
        expected = recompute(tiny_model, p, run.tokens, adapter.path if adapter else None)
        assert run.logprobs == pytest.approx(expected, abs=1e-4)
    base_view = recompute(tiny_model, prompt, runs[1][1].tokens)
    assert max(abs(x - y) for x, y in zip(base_view, runs[1][1].logprobs, strict=True)) > 1e-2  # adapters matter


def test_least_recently_used_adapter_leaves_and_a_bad_adapter_fails_its_request(tiny_model: Path,
                                                                                tmp_path: Path) -> None:
    one = Adapter("m-one", make_adapter(tiny_model, tmp_path / "one", seed=1))
    two = Adapter("m-two", make_adapter(tiny_model, tmp_path / "two", seed=2))
    engine = Engine.load(tiny_model, max_adapters=1).start()
    try:
        prompt = prompt_ids(tiny_model, [{"role": "user", "content": "hi"}])
        wait(ask(engine, prompt, one, max_tokens=2))
        wait(ask(engine, prompt, two, max_tokens=2))
        broken = ask(engine, prompt, Adapter("m-gone", tmp_path / "missing"), max_tokens=2)
        fine = ask(engine, prompt, max_tokens=2)
        wait(broken, fine)
    finally:
        engine.stop()
    assert engine.loaded_adapters() == ["m-two"]
    assert broken.done is not None and broken.done.finish_reason == "error" and broken.tokens == []
    assert broken.done.error == f"cannot load adapter m-gone: no adapter_config.json in {tmp_path / 'missing'}"
    assert fine.done == DoneEvent("length") and len(fine.tokens) == 2
