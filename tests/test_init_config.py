"""`art init` writes every configuration key, from the config models themselves."""

from __future__ import annotations

import tomllib
from pathlib import Path

from config.settings import SECTIONS, TABLES, ArtConfig, load_config
from stack.init_config import render_template


def test_the_template_holds_every_key_at_its_default(tmp_path: Path) -> None:
    text = render_template(tmp_path / "data")
    path = tmp_path / "art.toml"
    path.write_text(text)
    assert load_config(path, environ={}) == ArtConfig(storage={"data_dir": tmp_path / "data"})  # type: ignore[arg-type]
    doc = tomllib.loads(text)["art"]
    lines = text.splitlines()
    for name, field in ArtConfig.model_fields.items():
        if name in TABLES:  # free-form: shown commented, with an example
            assert any(line.startswith(f"# [art.{name}]") for line in lines), name
            continue
        if name not in SECTIONS:
            assert name in doc, name
            continue
        assert f"[art.{name}]" in lines
        for key, sub in field.default_factory.model_fields.items():  # type: ignore[union-attr]
            if sub.default is None or isinstance(sub.default_factory, type):
                assert any(line.startswith((f"# {key} = ", f"# [art.{name}.{key}]")) for line in lines), key
            else:
                assert key in doc[name], f"{name}.{key}"
            assert sub.description, f"{name}.{key} has no description for the template"
    assert "llm_timeout_s = 60.0                  # seconds one LLM call may take" in lines
    assert all(line == line.rstrip() for line in lines)
