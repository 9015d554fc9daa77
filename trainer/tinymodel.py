"""Build a tiny Llama-style causal LM plus a locally trained byte-level BPE tokenizer, saved as an
ordinary HF model directory: no hub download is possible here, and tests/bench need a real model.

The chat template wraps assistant turns in ``{% generation %}`` markers; without them transformers
silently returns an all-zero assistant mask and nothing is trained (TRAINER.md).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from trainer import synthetic

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
FRAMING = ["Objective:", "Observation:", "Thought:", "Action:", "Action Input:", "Final Answer:", "Ask:",
           "Think:", "Error:", "Result:", "You are a careful agent. Reply with Thought and Action lines."]


class TinySpec(BaseModel):
    """Shape of the model; defaults are the test size (hidden 128, 2 layers: TRAINER.md)."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 344
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True
    seed: int = 0


BENCH_SPEC = TinySpec(vocab_size=8192, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                      num_attention_heads=8, tie_word_embeddings=False)
"""≈21M parameters (8k vocabulary, untied head): the size TRAINER.md measured the HF baselines on."""


def build_tokenizer(vocab_size: int, texts: list[str]):  # type: ignore[no-untyped-def]
    """A fast tokenizer (byte-level BPE) trained on ``texts``, with our chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|pad|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def local_corpus(max_bytes: int) -> list[str]:
    """Varied text already on disk (transformers' own sources), so a larger BPE vocabulary gets real merges."""
    import transformers

    out: list[str] = []
    size = 0
    for file in sorted(Path(transformers.__file__).parent.rglob("*.py")):
        text = file.read_text(errors="ignore")
        out.append(text)
        size += len(text)
        if size >= max_bytes:
            break
    return out


def build_tiny_model(path: Path, spec: TinySpec | None = None) -> Path:
    """Write tokenizer + randomly initialised LlamaForCausalLM to ``path``; returns ``path``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from trainer.train import quiet_transformers

    quiet_transformers()
    spec = spec or TinySpec()
    texts = synthetic.corpus(400) + FRAMING * 20
    if spec.vocab_size > 1024:
        texts += local_corpus(spec.vocab_size * 400)
    tokenizer = build_tokenizer(spec.vocab_size, texts)
    torch.manual_seed(spec.seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
                         intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_hidden_layers,
                         num_attention_heads=spec.num_attention_heads,
                         num_key_value_heads=spec.num_attention_heads,
                         max_position_embeddings=spec.max_position_embeddings,
                         tie_word_embeddings=spec.tie_word_embeddings,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
