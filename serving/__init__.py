"""`art serve`: an OpenAI-compatible endpoint over the base model and the registry's LoRA adapters.

Imports stay light: torch, transformers and peft load inside the engine, so `art --help` and the
pipeline never pay for them.
"""
