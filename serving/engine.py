"""The generation engine: one thread, one model, continuous batching over base and LoRA adapters.

Requests join the running batch between decoding steps (their prompts are prefilled together and
their KV rows joined to the batch's, ``serving.kvcache``) and leave it as soon as they finish, so a
late request never waits for a long one. Rows of different adapters share a batch: peft's
``adapter_names`` routes each row through its own LoRA weights (``__base__`` for none). Every change
to the model (loading or evicting an adapter) happens on this thread, between steps, so a
promotion never races a forward pass.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving import kvcache
from serving.sampling import Choice, SamplingParams, choose
from serving.text import TextTracker

log = logging.getLogger(__name__)
BASE = "__base__"


class EngineError(RuntimeError):
    """The model could not be loaded, or the engine was used after it stopped."""


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter as the engine knows it: a unique name (the registry model id) and its folder."""

    name: str
    path: Path


@dataclass(frozen=True)
class TokenEvent:
    token: int
    logprob: float
    top: list[tuple[int, float]]
    text: str


@dataclass(frozen=True)
class DoneEvent:
    finish_reason: str  # "stop" | "length" | "error"
    error: str | None = None


Event = TokenEvent | DoneEvent


@dataclass
class GenRequest:
    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[Event], None]
    """Called on the engine thread; must not block (hand the event to another thread or loop)."""
    adapter: Adapter | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Row:
    request: GenRequest
    tracker: TextTracker
    generator: Any
    position: int  # where the last token of ``ids`` goes in the next forward pass
    ids: list[int] = field(default_factory=list)
    done: bool = False

    @property
    def adapter_name(self) -> str:
        return self.request.adapter.name if self.request.adapter else BASE


class Engine:
    """``submit`` from any thread; ``start``/``stop`` own the thread. Load with ``Engine.load``."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 16, max_adapters: int = 8) -> None:
        self.base = model
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_adapters = max_adapters
        self.context = int(getattr(model.config, "max_position_embeddings", 2048))
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        self.eos = {*(eos if isinstance(eos, list) else [eos] if eos is not None else [])}
        if tokenizer.eos_token_id is not None:
            self.eos.add(int(tokenizer.eos_token_id))
        self.pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos), 0))
        self.tokenizer_lock = threading.Lock()  # fast tokenizers are not safe to share across threads
        self._pending: queue.Queue[GenRequest] = queue.Queue()
        self._commands: queue.Queue[Adapter] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded: OrderedDict[str, Path] = OrderedDict()
        self._rows: list[_Row] = []
        self._cache: Any = None  # the batch's DynamicCache, rebuilt only when rows join or leave
        self._mask: Any = None
        self.steps = 0
        self.peak_batch = 0

    @classmethod
    def load(cls, model_dir: Path, **kwargs: Any) -> Engine:
        """Load an HF model directory in fp32 (CPU)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (model_dir / "config.json").exists():
            raise EngineError(f"{model_dir} is not a local HF model directory (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        model.eval()
        return cls(model, tokenizer, **kwargs)

    # --- any thread ----------------------------------------------------------------------------

    def encode_chat(self, messages: list[dict[str, str]], continue_final: bool = False) -> list[int]:
        """The chat as prompt tokens: a new assistant turn opened, or (``continue_final``) the last
        assistant message left open, so the reply continues it."""
        with self.tokenizer_lock:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=not continue_final,
                                                      continue_final_message=continue_final)
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        with self.tokenizer_lock:
            return str(self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    def token_text(self, token: int) -> str:
        with self.tokenizer_lock:
            return str(self.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def submit(self, request: GenRequest) -> None:
        """Queue ``request``; before ``start`` it waits, so requests queued together are admitted together."""
        if self._stop.is_set():
            raise EngineError("the engine has stopped")
        self._pending.put(request)
        self._wake.set()

    def preload(self, adapter: Adapter) -> None:
        """Load ``adapter`` before a request needs it (a new champion); no-op when loaded."""
        self._commands.put(adapter)
        self._wake.set()

    def loaded_adapters(self) -> list[str]:
        return list(self._loaded)

    def start(self) -> Engine:
        self._thread = threading.Thread(target=self._run, name="serve-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # --- engine thread -------------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:  # a bug must not leave clients waiting forever
                    log.exception("engine step failed")
                    for row in self._rows:
                        row.request.emit(DoneEvent("error", f"engine failure: {exc.__class__.__name__}: {exc}"))
                    self._rows, self._cache, self._mask = [], None, None
        for row in self._rows:
            row.request.emit(DoneEvent("error", "server shutting down"))
        while not self._pending.empty():
            self._pending.get_nowait().emit(DoneEvent("error", "server shutting down"))

    def _step(self) -> None:
        while not self._commands.empty():
            adapter = self._commands.get_nowait()
            try:
                self._ensure_adapter(adapter)
            except Exception as exc:
                log.warning("preloading adapter %s failed: %s", adapter.name, exc)
        self._admit()
        if not self._rows:
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            return
        self._decode()

    def _take_pending(self) -> list[GenRequest]:
        taken: list[GenRequest] = []
        while len(self._rows) + len(taken) < self.max_batch:
            try:
                request = self._pending.get_nowait()
            except queue.Empty:
                break
            if request.cancelled.is_set():
                continue
            adapter = request.adapter
            try:
                if adapter is not None:
                    self._ensure_adapter(adapter)
            except Exception as exc:
                request.emit(DoneEvent("error", f"cannot load adapter {adapter.name if adapter else '?'}: {exc}"))
                continue
            taken.append(request)
        return taken

    def _admit(self) -> None:
        import torch

        new = self._take_pending()
        if not new:
            return
        width = max(len(r.prompt_ids) for r in new)
        ids = torch.full((len(new), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(new), width), dtype=torch.long)
        for i, r in enumerate(new):
            ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids):] = 1
        rows = [_Row(r, TextTracker(self.decode, list(r.params.stops)), self._generator(r.params.seed),
                     position=len(r.prompt_ids)) for r in new]
        cache = kvcache.build([])
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                         past_key_values=cache, use_cache=True, logits_to_keep=1, **self._adapter_args(rows))
        if self._rows:
            layers, self._mask = kvcache.join(kvcache.layers_of(self._cache), self._mask,
                                              kvcache.layers_of(out.past_key_values), mask)
            self._cache = kvcache.build(layers)
        else:
            self._cache, self._mask = out.past_key_values, mask
        self._rows += rows
        self.peak_batch = max(self.peak_batch, len(self._rows))
        self._accept(rows, out.logits[:, -1, :])

    def _decode(self) -> None:
        import torch

        last = torch.tensor([[r.ids[-1]] for r in self._rows], dtype=torch.long)
        mask = torch.cat([self._mask, torch.ones((len(self._rows), 1), dtype=torch.long)], dim=1)
        positions = torch.tensor([[r.position] for r in self._rows], dtype=torch.long)
        out = self.model(input_ids=last, attention_mask=mask, position_ids=positions,
                         past_key_values=self._cache, use_cache=True, **self._adapter_args(self._rows))
        self._cache, self._mask = out.past_key_values, mask
        self.steps += 1
        for r in self._rows:
            r.position += 1
        self._accept(self._rows, out.logits[:, -1, :])

    def _accept(self, rows: list[_Row], logits: Any) -> None:
        """Append one chosen token to each of ``rows`` (one logits row each), emit, then retire finished rows."""
        choices = choose(logits, [r.request.params for r in rows], [r.generator for r in rows])
        for row, c in zip(rows, choices, strict=True):
            self._advance(row, c)
        keep = [i for i, r in enumerate(self._rows) if not r.done]
        if len(keep) < len(self._rows):
            self._rows = [self._rows[i] for i in keep]
            if self._rows:
                layers, self._mask = kvcache.select(kvcache.layers_of(self._cache), self._mask, keep)
                self._cache = kvcache.build(layers)
            else:
                self._cache, self._mask = None, None

    def _advance(self, row: _Row, c: Choice) -> None:
        row.ids.append(c.token)
        params = row.request.params
        if row.request.cancelled.is_set():
            row.done = True
            return
        eos = c.token in self.eos and not params.ignore_eos
        text = row.tracker.update(row.ids[:-1] if eos else row.ids)
        reason = "stop" if eos or row.tracker.stopped else "length" if (
            len(row.ids) >= params.max_tokens or row.position >= self.context) else None
        if reason:
            text += row.tracker.finish()
        row.request.emit(TokenEvent(c.token, c.logprob, c.top, text))
        if reason:
            row.done = True
            row.request.emit(DoneEvent(reason))

    def _adapter_args(self, rows: list[_Row]) -> dict[str, Any]:
        if self.model is self.base:
            return {}
        return {"adapter_names": [r.adapter_name for r in rows]}

    def _generator(self, seed: int | None) -> Any:
        import torch

        return torch.Generator().manual_seed(seed if seed is not None else random.getrandbits(63))

    def _ensure_adapter(self, adapter: Adapter) -> None:
        if adapter.name in self._loaded:
            self._loaded.move_to_end(adapter.name)
            return
        if not (adapter.path / "adapter_config.json").exists():
            raise EngineError(f"no adapter_config.json in {adapter.path}")
        if self.model is self.base:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.base, str(adapter.path), adapter_name=adapter.name)
            self.model.eval()
        else:
            self.model.load_adapter(str(adapter.path), adapter_name=adapter.name)
        self._loaded[adapter.name] = adapter.path
        log.info("loaded adapter %s from %s", adapter.name, adapter.path)
        busy = {r.adapter_name for r in self._rows}
        for name in list(self._loaded):
            if len(self._loaded) <= self.max_adapters:
                break
            if name not in busy and name != adapter.name:
                self.model.delete_adapter(name)
                del self._loaded[name]
