"""The training loop: LoRA on any local causal LM, objectives sft | dpo | awr, our own loop.

Why not TRL or the HF Trainer: we need packing without cross-attention between packed sequences on
CPU (TRL's padding-free path wants flash-attention), a DPO reference that is the same weights with
adapters disabled, per-example AWR weights, and checkpoints that carry RNG state and curves so a
killed run resumes to the same final step. Each of those is a few lines here and a subclass there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from cli.output import err
from trainer import datasets
from trainer.batches import collate
from trainer.checkpoints import checkpoint_dirs, load_checkpoint, save_checkpoint
from trainer.config import TrainingConfig
from trainer.datasets import Encoded, Pair
from trainer.errors import TrainerError
from trainer.losses import (
    dpo_loss,
    reference_logps,
    sequence_lengths,
    sequence_logps,
    token_logps,
    weighted_nll,
)
from trainer.windows import Window

StepHook = Callable[[int, float], None]


@dataclass
class TrainData:
    """Encoded examples: ``train`` holds Encoded (sft, awr) or Pairs (dpo)."""

    objective: str
    train: list[Any]
    eval_seqs: list[Encoded] = field(default_factory=list)
    eval_pairs: list[Pair] = field(default_factory=list)


class TrainResult(BaseModel):
    run_dir: str
    adapter_dir: str
    steps: int
    resumed_from: int | None = None
    stopped_early: bool = False
    history: list[dict[str, float]] = Field(default_factory=list)
    evals: list[dict[str, float]] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)


def build_data(cfg: TrainingConfig, window: Window, heldout: Window | None, tokenizer: Any,
               reward_threshold: float) -> TrainData:
    """Examples for ``cfg.objective`` from ``window``; held-out successful runs and pairs for evaluation."""
    n = cfg.max_length
    if cfg.objective == "sft":
        kept = window.successful(reward_threshold)
        weights = datasets.rarity_weights(kept) if cfg.sft_weighting == "rarity" else None
        train: list[Any] = datasets.sft_examples(kept, tokenizer, n, weights)
        what = f"successful trajectories (reward >= {reward_threshold})"
    elif cfg.objective == "dpo":
        train = datasets.preference_pairs(window, tokenizer, n)
        what = "preference pairs (groups with a best and a worse run)"
    else:
        train = datasets.awr_examples(window, tokenizer, n, cfg.awr_temperature, cfg.awr_max_weight)
        what = "trajectories with steps"
    datasets.require(train, what, window)
    data = TrainData(cfg.objective, train)
    if heldout is not None and heldout.trajectories:
        data.eval_seqs = datasets.sft_examples(heldout.successful(reward_threshold), tokenizer, n)
        data.eval_pairs = datasets.preference_pairs(heldout, tokenizer, n)
    return data


def quiet_transformers() -> None:
    """No per-file progress bars or advice from transformers: `art train` and `art demo` show their own
    progress, and a bar per load or save of a 20M-parameter model is noise in their output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_policy(cfg: TrainingConfig) -> tuple[Any, Any]:
    """(peft model with fresh LoRA adapters, or ``init_adapter``'s made trainable, tokenizer); seeded first,
    since LoRA init draws from torch's RNG."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    path = Path(cfg.model_path)
    if not (path / "config.json").exists():
        raise TrainerError(f"model_path {cfg.model_path!r} is not a local HF model directory")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    if cfg.init_adapter:
        init = Path(cfg.init_adapter)
        if not (init / "adapter_config.json").is_file():
            raise TrainerError(f"init_adapter {cfg.init_adapter!r} is not a LoRA adapter folder "
                               "(no adapter_config.json)")
        try:
            return PeftModel.from_pretrained(base, init, is_trainable=True), tokenizer
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainerError(f"init_adapter {cfg.init_adapter!r} does not fit {cfg.model_path}: {exc}") from None
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules(), task_type="CAUSAL_LM")
    return get_peft_model(base, lora), tokenizer


def items_for_step(n: int, per_step: int, step: int, seed: int) -> list[int]:
    """Deterministic order (a fresh shuffle per epoch), so a resumed run sees the same batches (and
    `art bench train` feeds the HF baseline the same batches in the same order)."""
    per_epoch = -(-n // per_step)
    epoch, index = divmod(step, per_epoch)
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order[index * per_step:(index + 1) * per_step]


def _flat(items: list[Any], objective: str) -> list[Encoded]:
    return [s for pair in items for s in pair] if objective == "dpo" else items


def step_loss(model: Any, cfg: TrainingConfig, items: list[Any], pad_id: int) -> tuple[Any, int]:
    """(loss tensor, non-pad tokens) for one batch of ``items``."""
    batch = collate(_flat(items, cfg.objective), cfg.max_length, pad_id, cfg.packing)
    if cfg.objective == "dpo":
        reference = reference_logps(model, batch, cfg.bf16)
        loss, _ = dpo_loss(sequence_logps(token_logps(model, batch, cfg.bf16), batch), reference, cfg.dpo_beta)
        return loss, batch.tokens
    return weighted_nll(token_logps(model, batch, cfg.bf16), batch), batch.tokens


def evaluate(model: Any, cfg: TrainingConfig, data: TrainData, pad_id: int) -> dict[str, float]:
    """Held-out NLL on successful runs; preference accuracy on held-out pairs.

    Preference accuracy is the share of pairs whose chosen run has the higher log-prob per assistant
    token (a raw sum would mostly say which run is shorter); DPO runs also report ``reward_accuracy``,
    the share with a positive implicit-reward margin against the reference.
    """
    import torch

    out: dict[str, float] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        if data.eval_seqs:
            total, count = 0.0, 0
            for i in range(0, len(data.eval_seqs), cfg.batch_size):
                batch = collate(data.eval_seqs[i:i + cfg.batch_size], cfg.max_length, pad_id, cfg.packing)
                logps = token_logps(model, batch)
                total, count = total - float(logps.sum()), count + logps.numel()
            out["eval_loss"] = total / max(1, count)
        if data.eval_pairs:
            wins, losses = 0, []
            for i in range(0, len(data.eval_pairs), cfg.batch_size):
                batch = collate(_flat(data.eval_pairs[i:i + cfg.batch_size], "dpo"), cfg.max_length, pad_id,
                                cfg.packing)
                policy = sequence_logps(token_logps(model, batch), batch)
                per_token = policy / sequence_lengths(batch)
                wins += int((per_token[0::2] > per_token[1::2]).sum())
                if cfg.objective == "dpo":
                    loss, accuracy = dpo_loss(policy, reference_logps(model, batch), cfg.dpo_beta)
                    losses.append((float(loss), float(accuracy)))
            out["preference_accuracy"] = wins / len(data.eval_pairs)
            if losses:
                out["eval_dpo_loss"] = sum(x for x, _ in losses) / len(losses)
                out["reward_accuracy"] = sum(a for _, a in losses) / len(losses)
    model.train(was_training)
    return out


def _metric(cfg: TrainingConfig, data: TrainData) -> str | None:
    if cfg.objective == "dpo" and data.eval_pairs:
        return "eval_dpo_loss"
    return "eval_loss" if data.eval_seqs else None


def _optimizer(model: Any, lr: float) -> Any:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def fit(cfg: TrainingConfig, data: TrainData, run_dir: Path, *, model: Any = None, tokenizer: Any = None,
        progress: bool = True, resume: bool = True, on_step: StepHook | None = None) -> TrainResult:
    """Train until max_steps / epochs / early stopping; resume from run_dir's newest checkpoint if any."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if model is None:
        model, tokenizer = load_policy(cfg)
    pad_id = int(tokenizer.pad_token_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    adapter_dir = run_dir / "adapter"
    per_step = cfg.groups_per_step if cfg.objective == "dpo" else cfg.batch_size
    total = min(cfg.max_steps, cfg.num_epochs * -(-len(data.train) // per_step))
    optimizer = _optimizer(model, cfg.learning_rate)
    state: dict[str, Any] = {"history": [], "evals": [], "best": None, "bad_evals": 0, "stopped_early": False}
    start, resumed_from = 0, None
    found = checkpoint_dirs(run_dir) if resume else []
    if found:
        state.update(load_checkpoint(found[-1], model, optimizer))
        start = resumed_from = int(state["step"])
    metric = _metric(cfg, data)
    model.train()
    train_seconds, tokens = 0.0, 0
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not progress, console=err) as bar:  # progress on stderr, results on stdout
        task = bar.add_task(f"{cfg.objective} {run_dir.name}", total=total, completed=start, loss="-")
        step = start
        while step < total and not state["stopped_early"]:
            t0, c0 = time.perf_counter(), time.process_time()
            items = [data.train[i] for i in items_for_step(len(data.train), per_step, step, cfg.seed)]
            loss, n_tokens = step_loss(model, cfg, items, pad_id)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            tokens += n_tokens
            step += 1
            state["history"].append({"step": step, "loss": value, "tokens": n_tokens, "seconds": seconds,
                                     "cpu_seconds": time.process_time() - c0})
            bar.update(task, advance=1, loss=f"{value:.4f}")
            if on_step is not None:
                on_step(step, value)
            if metric and ((cfg.evaluation_interval and step % cfg.evaluation_interval == 0) or step == total):
                _evaluate_and_track(model, cfg, data, pad_id, step, metric, state, adapter_dir)
            if cfg.checkpoint_interval and step % cfg.checkpoint_interval == 0 and step < total:
                save_checkpoint(run_dir, model, optimizer, step, {k: v for k, v in state.items() if k != "step"})
    if metric is None or not adapter_dir.exists():
        model.save_pretrained(adapter_dir)
    return _result(run_dir, adapter_dir, step, resumed_from, state, metric, tokens, train_seconds)


def _evaluate_and_track(model: Any, cfg: TrainingConfig, data: TrainData, pad_id: int, step: int, metric: str,
                        state: dict[str, Any], adapter_dir: Path) -> None:
    """Record an evaluation, keep the best adapter, count evaluations without improvement."""
    scores = evaluate(model, cfg, data, pad_id)
    state["evals"].append({"step": step, **scores})
    value = scores.get(metric)
    if value is None:
        return
    if state["best"] is None or value < state["best"]:
        state["best"], state["bad_evals"] = value, 0
        model.save_pretrained(adapter_dir)
    else:
        state["bad_evals"] += 1
        if cfg.early_stopping_patience and state["bad_evals"] >= cfg.early_stopping_patience:
            state["stopped_early"] = True


def _result(run_dir: Path, adapter_dir: Path, step: int, resumed_from: int | None, state: dict[str, Any],
            metric: str | None, tokens: int, seconds: float) -> TrainResult:
    history, evals = state["history"], state["evals"]
    metrics: dict[str, float] = {"steps": float(step), "tokens": float(tokens), "train_seconds": seconds,
                                 "tokens_per_s": tokens / seconds if seconds else 0.0}
    if history:
        tail = history[-min(5, len(history)):]
        metrics |= {"loss_first": history[0]["loss"], "loss_last": sum(h["loss"] for h in tail) / len(tail)}
    best = min((e for e in evals if metric and metric in e), key=lambda e: e[metric], default=None)  # type: ignore[index]
    # The saved adapter is the best evaluation's, so its scores are the model's metrics.
    for e in ([best] if best else []) + ([evals[-1]] if evals else []):
        for k, v in e.items():
            if k != "step":
                metrics.setdefault(k, v)
    return TrainResult(run_dir=str(run_dir), adapter_dir=str(adapter_dir), steps=step, resumed_from=resumed_from,
                       stopped_early=bool(state["stopped_early"]), history=history, evals=evals, metrics=metrics)


def train_window(cfg: TrainingConfig, window: Window, run_dir: Path, *, heldout: Window | None = None,
                 reward_threshold: float = 0.7, progress: bool = True, resume: bool = True,
                 on_step: StepHook | None = None) -> TrainResult:
    """Encode ``window`` (and the held-out window) with the model's tokenizer, then ``fit``."""
    model, tokenizer = load_policy(cfg)
    data = build_data(cfg, window, heldout, tokenizer, reward_threshold)
    return fit(cfg, data, run_dir, model=model, tokenizer=tokenizer, progress=progress, resume=resume,
               on_step=on_step)
