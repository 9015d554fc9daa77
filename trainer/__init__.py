"""Trainer: reward-filtered windows from ClickHouse -> LoRA fine-tunes -> model registry and champion.

Importing this package (and ``trainer.cli``) stays light: torch, transformers and peft are imported
inside the functions that train, so the pipeline installs and runs without the ``[train]`` extra.
"""

from trainer.errors import TrainerError

__all__ = ["TrainerError"]
