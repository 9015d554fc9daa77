"""`art bench train`: training tokens/s of our loop against the HF Trainer, same model/data/LoRA/batch.

Both sides: the same ≈20M-parameter tiny Llama, the same LoRA init (same seed), the same batches
in the same order (the HF Trainer reads a dataset pre-ordered like our batches with a sequential
sampler), constant LR, AdamW, clipping 1.0, no checkpoints. The baseline pads to the longest
sequence of each batch in fp32; ours packs, sends only loss positions through the LM head and uses
fused AdamW (bf16 autocast optional). Every measurement is a fresh process, alternating ours/HF;
we report medians with their spread (``bench.measure``), and the held-out loss both reach after the
same tokens (same eval code). The first step (one-off allocator and kernel warm-up) is excluded from
the timing on both sides; a ratio is refused when the baseline's timed steps ran under 5 s (raise
``--steps``). On a shared machine wall time swings with other people's load, so tokens per
CPU-second is reported beside it.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import describe, emit, progress, ratio_fields, spread
from trainer.config import TrainingConfig

LR = 2e-3


def _prepare(root: Path, max_length: int, n_train: int, n_eval: int, model: Path | None = None) -> Path:
    """Build (or link) the model and encode the examples once; workers load them from ``root``."""
    from transformers import AutoTokenizer

    from trainer import synthetic
    from trainer.datasets import sft_examples
    from trainer.tinymodel import BENCH_SPEC, build_tiny_model
    from trainer.windows import window_from_runs

    if model is None:
        model_dir = build_tiny_model(root / "model", BENCH_SPEC)
    else:  # a real model directory (the converted SmolLM2): linked, not copied (0.5 GB)
        model_dir = root / "model"
        model_dir.symlink_to(model.resolve(), target_is_directory=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train_w = window_from_runs(synthetic.runs(n_train, 4, seed=11))
    eval_w = window_from_runs(synthetic.runs(n_eval, 4, seed=99))
    train = sft_examples(train_w.successful(0.7), tokenizer, max_length)
    held = sft_examples(eval_w.successful(0.7), tokenizer, max_length)
    (root / "data.json").write_text(json.dumps({"train": [[e.ids, e.mask] for e in train],
                                                "eval": [[e.ids, e.mask] for e in held]}))
    return root


def _config(root: Path, steps: int, batch_size: int, max_length: int, bf16: bool) -> TrainingConfig:
    return TrainingConfig(model_path=str(root / "model"), learning_rate=LR, max_steps=steps, batch_size=batch_size,
                          num_epochs=1000, max_length=max_length, checkpoint_interval=0, evaluation_interval=0,
                          early_stopping_patience=0, bf16=bf16, packing=True, seed=0)


def _worker(impl: str, root: Path, steps: int, batch_size: int, max_length: int, bf16: bool) -> dict[str, Any]:
    import resource

    from trainer.datasets import Encoded
    from trainer.train import TrainData, evaluate, fit, items_for_step, load_policy

    doc = json.loads((root / "data.json").read_text())
    train = [Encoded(ids, mask) for ids, mask in doc["train"]]
    held = [Encoded(ids, mask) for ids, mask in doc["eval"]]
    cfg = _config(root, steps, batch_size, max_length, bf16)
    model, tokenizer = load_policy(cfg)
    order = [i for s in range(steps) for i in items_for_step(len(train), batch_size, s, cfg.seed)]
    tokens = sum(len(train[i]) for i in order[batch_size:])  # step 1 is warm-up on both sides, not timed
    if impl == "ours":
        result = fit(cfg, TrainData("sft", train), root / f"run-{time.time_ns()}", model=model,
                     tokenizer=tokenizer, progress=False, resume=False)
        timed = result.history[1:]
        seconds, cpu = sum(h["seconds"] for h in timed), sum(h["cpu_seconds"] for h in timed)
        losses = [h["loss"] for h in result.history]
    else:
        seconds, cpu, losses = _hf_train(model, tokenizer, [train[i] for i in order], cfg, root)
    scores = evaluate(model, cfg, TrainData("sft", [], eval_seqs=held), int(tokenizer.pad_token_id))
    return {"impl": impl, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "tokens_per_cpu_s": tokens / cpu,
            "loss_first": losses[0], "loss_last": losses[-1], "eval_loss": scores["eval_loss"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "params": sum(p.numel() for p in model.parameters())}


def _hf_train(model: Any, tokenizer: Any, ordered: list[Any], cfg: TrainingConfig,
              root: Path) -> tuple[float, float, list[float]]:
    """The baseline: transformers.Trainer, fp32, constant LR, pad to longest, sequential over ``ordered``."""
    import torch
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainerCallback, TrainingArguments

    pad = int(tokenizer.pad_token_id)
    rows = [{"input_ids": e.ids, "labels": [i if m else -100 for i, m in zip(e.ids, e.mask, strict=True)]}
            for e in ordered]

    def collator(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.tensor([b["input_ids"] + [pad] * (width - len(b["input_ids"])) for b in batch])
        labels = torch.tensor([b["labels"] + [-100] * (width - len(b["labels"])) for b in batch])
        mask = torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch])
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    class Sequential(Trainer):
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            return SequentialSampler(self.train_dataset)  # type: ignore[arg-type]  # a list: Sized

    class Clock(TrainerCallback):
        start = end = cpu_start = cpu_end = 0.0

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 1:  # after the warm-up step, as on our side
                Clock.start, Clock.cpu_start = time.perf_counter(), time.process_time()
            Clock.end, Clock.cpu_end = time.perf_counter(), time.process_time()

    args = TrainingArguments(output_dir=str(root / "hf-out"), per_device_train_batch_size=cfg.batch_size,
                             max_steps=cfg.max_steps, learning_rate=cfg.learning_rate, lr_scheduler_type="constant",
                             warmup_steps=0, weight_decay=0.0, max_grad_norm=cfg.max_grad_norm, logging_steps=1,
                             save_strategy="no", eval_strategy="no", report_to=[], use_cpu=True, seed=cfg.seed,
                             dataloader_num_workers=0, disable_tqdm=True, optim="adamw_torch",
                             remove_unused_columns=False)
    trainer = Sequential(model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[Clock()])
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return Clock.end - Clock.start, Clock.cpu_end - Clock.cpu_start, losses


def bench_train(*, steps: int = 10, repeats: int = 3, batch_size: int = 8, max_length: int = 256,
                bf16: bool = False, workdir: Path | None = None, echo: bool = True,
                model: Path | None = None) -> dict[str, Any]:
    """Alternate fresh worker processes (ours, HF) ``repeats`` times; print and return the summary.
    ``model``: a real HF model directory instead of the ≈20M-parameter tiny one (``--model smollm2``).

    Progress goes to stderr; the last stdout line is one JSON object (tokens, tokens_per_s,
    baseline_tokens_per_s, ratio, spread, peak_rss_mb, loss_first, loss_last, eval_loss, ...).
    """
    root = workdir or Path(tempfile.mkdtemp(prefix="art-bench-train-"))
    try:
        return _bench(root, steps, repeats, batch_size, max_length, bf16, echo, keep=workdir is not None,
                      model=model)
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)  # the model and data: ~100 MB per run


def _bench(root: Path, steps: int, repeats: int, batch_size: int, max_length: int, bf16: bool, echo: bool,
           keep: bool, model: Path | None) -> dict[str, Any]:
    if not (root / "data.json").exists():
        _prepare(root, max_length, n_train=max(16, steps * batch_size // 2), n_eval=8, model=model)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "hf": []}
    for r in range(repeats):
        for impl in ("ours", "hf"):
            cmd = [sys.executable, "-m", "bench.train", impl, str(root), str(steps), str(batch_size),
                   str(max_length), "1" if bf16 else "0"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{impl} worker failed:\n{proc.stderr[-3000:]}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[impl].append(out)
            if echo:
                progress(f"run {r + 1}/{repeats} {impl:>4}: {out['tokens_per_s']:8.0f} tok/s  "
                         f"{out['tokens_per_cpu_s']:8.0f} tok/cpu-s  {out['seconds']:.1f} s timed  "
                         f"eval_loss {out['eval_loss']:.4f}  rss {out['peak_rss_mb']:.0f} MB")

    def med(impl: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[impl])

    spreads = {f"{prefix}{key}": spread([x[key] for x in runs[impl]])
               for impl, prefix in (("ours", ""), ("hf", "baseline_")) for key in ("tokens_per_s", "tokens_per_cpu_s")}
    if echo:
        for name, s in spreads.items():
            progress(describe(name, s))
    baseline_s = min(x["seconds"] for x in runs["hf"])
    summary = {"tokens": runs["ours"][0]["tokens"], "tokens_per_s": round(med("ours", "tokens_per_s"), 1),
               "baseline_tokens_per_s": round(med("hf", "tokens_per_s"), 1),
               **ratio_fields(med("ours", "tokens_per_s"), med("hf", "tokens_per_s"), baseline_s),
               "tokens_per_cpu_s": round(med("ours", "tokens_per_cpu_s"), 1),
               "baseline_tokens_per_cpu_s": round(med("hf", "tokens_per_cpu_s"), 1),
               **ratio_fields(med("ours", "tokens_per_cpu_s"), med("hf", "tokens_per_cpu_s"), baseline_s,
                              key="cpu_ratio"),
               "baseline_seconds": round(baseline_s, 2),
               "spread": {k: v.model_dump() for k, v in spreads.items()},
               "peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs["ours"]), 1),
               "baseline_peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs["hf"]), 1),
               "loss_first": round(med("ours", "loss_first"), 4), "loss_last": round(med("ours", "loss_last"), 4),
               "baseline_loss_first": round(med("hf", "loss_first"), 4),
               "baseline_loss_last": round(med("hf", "loss_last"), 4),
               "eval_loss": round(med("ours", "eval_loss"), 4), "baseline_eval_loss": round(med("hf", "eval_loss"), 4),
               "steps": steps, "batch_size": batch_size, "max_length": max_length, "repeats": repeats, "bf16": bf16,
               "model_params": runs["ours"][0]["params"], "model": str(model or "tiny"),
               "workdir": str(root) if keep else None}
    if echo:
        emit(summary)
    return summary


if __name__ == "__main__":
    impl_, root_, steps_, batch_, length_, bf16_ = sys.argv[1:7]
    print(json.dumps(_worker(impl_, Path(root_), int(steps_), int(batch_), int(length_), bf16_ == "1")))
