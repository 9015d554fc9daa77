"""TrainingConfig: every knob of a run; the field metadata also drives the CLI flags (as in TRL).

Semantics: a step is one optimizer update over ``batch_size`` examples (sft, awr) or over
``groups_per_step`` preference pairs (dpo, one pair per group). A run lasts
``min(max_steps, num_epochs * steps_per_epoch)`` steps. ``rollouts_per_group`` is the top-k
trajectories per group that a window keeps.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from trainer.errors import TrainingConfigError

OBJECTIVES: tuple[str, ...] = ("sft", "dpo", "awr")


def _opt(default: Any, help: str) -> Any:
    """A dataclass field whose help text becomes the CLI flag's help."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainingConfig:
    model_path: str = _opt("", "local HF causal-LM directory (default: [art.models] base_model)")
    objective: str = _opt("sft", "sft | dpo | awr")
    groups_per_step: int = _opt(4, "dpo: preference pairs (one per group) per step")
    rollouts_per_group: int = _opt(8, "top-k trajectories kept per group by reward")
    num_epochs: int = _opt(1, "passes over the window (capped by max_steps)")
    learning_rate: float = _opt(5e-4, "AdamW learning rate (constant)")
    max_steps: int = _opt(200, "upper bound on optimizer steps")
    batch_size: int = _opt(8, "examples per step (sft, awr)")
    max_length: int = _opt(512, "tokens per sequence; longer conversations are split")
    checkpoint_interval: int = _opt(50, "save adapter+optimizer+RNG every N steps (0: off)")
    evaluation_interval: int = _opt(25, "held-out evaluation every N steps (0: only at end)")
    early_stopping_patience: int = _opt(3, "stop after N evaluations without improvement (0: off)")
    init_adapter: str = _opt("", "continue from this LoRA adapter's weights (a folder with adapter_config.json; "
                             "its LoRA shape replaces lora_*) instead of fresh ones")
    lora_r: int = _opt(8, "LoRA rank")
    lora_alpha: int = _opt(16, "LoRA alpha")
    lora_dropout: float = _opt(0.0, "LoRA dropout")
    lora_target_modules: str = _opt("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                                    "comma-separated module names, or all-linear")
    dpo_beta: float = _opt(0.1, "DPO temperature beta")
    sft_weighting: str = _opt("uniform", "sft: uniform | rarity (weight a success by how few runs of its "
                              "group succeeded; fully solved groups drop out)")
    awr_temperature: float = _opt(1.0, "AWR: weight = exp(advantage / temperature)")
    awr_max_weight: float = _opt(20.0, "AWR: clip weights before normalising to mean 1")
    eval_fraction: float = _opt(0.15, "share of groups held out when no eval window")
    packing: bool = _opt(True, "pack a batch's sequences into rows instead of padding")
    bf16: bool = _opt(False, "bf16 autocast (pays off on CPUs with AMX-BF16)")
    max_grad_norm: float = _opt(1.0, "gradient clipping")
    seed: int = _opt(0, "seeds LoRA init, data order and dropout")

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise TrainingConfigError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")
        for name in ("groups_per_step", "num_epochs", "max_steps", "batch_size", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise TrainingConfigError(f"{name} must be >= 1")
        if self.sft_weighting not in ("uniform", "rarity"):
            raise TrainingConfigError(f"sft_weighting must be uniform or rarity, not {self.sft_weighting!r}")
        if not 0 <= self.eval_fraction < 1:
            raise TrainingConfigError("eval_fraction must be in [0, 1)")

    def target_modules(self) -> list[str] | str:
        text = self.lora_target_modules.strip()
        return text if text == "all-linear" else [m.strip() for m in text.split(",") if m.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], given: Mapping[str, Any] | None = None) -> TrainingConfig:
        """The ``[art.training]`` table (TOML values, or text from ``ART_TRAINING_*``) under the flags ``given``
        on a command line; an unknown key or a value of the wrong type is a TrainingConfigError naming it."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise TrainingConfigError(f"[art.training] has no key {unknown[0]!r}: use one of {', '.join(names)}")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, value in table.items():
            try:
                values[key] = TypeAdapter(hints[key]).validate_python(value, strict=False)
            except ValidationError as exc:
                raise TrainingConfigError(f"[art.training] {key} = {value!r}: {exc.errors()[0]['msg']}") from None
        return cls(**(values | dict(given or {})))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
