"""`art vllm-sync` against a stand-in for vLLM's runtime-LoRA API: the adapters follow the registry."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.catalog import Catalog
from serving.vllm_sync import sync_once
from trainer.config import TrainingConfig
from trainer.registry import list_models, promote, register_base_model, register_model
from trainer.specializations import SPECIALIZATIONS
from trainer.train import TrainResult


class FakeVLLM:
    """The three routes of vLLM (`--enable-lora`, runtime updating) that the sync uses, with their errors."""

    def __init__(self) -> None:
        self.loras: dict[str, str] = {}
        self.calls: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                models = [{"id": "base", "root": "/models/base", "parent": None},
                          *({"id": n, "root": p, "parent": "base"} for n, p in fake.loras.items())]
                self._send(200, {"object": "list", "data": models})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = body["lora_name"]
                fake.calls.append(f"{self.path} {name}")
                if self.path == "/v1/load_lora_adapter":
                    if name in fake.loras:
                        return self._send(400, {"message": f"The lora adapter '{name}' has already been loaded."})
                    fake.loras[name] = body["lora_path"]
                elif name not in fake.loras:
                    return self._send(404, {"message": f"The lora adapter '{name}' cannot be found."})
                else:
                    del fake.loras[name]
                return self._send(200, {})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def vllm() -> Iterator[FakeVLLM]:
    fake = FakeVLLM()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def _adapter(store: Any, tiny_model: Path, tmp_path: Path, name: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    result = TrainResult(run_dir=str(tmp_path), adapter_dir=str(folder), steps=1, metrics={"eval_loss": 1.0})
    return register_model(store, result=result, cfg=TrainingConfig(model_path=str(tiny_model)), window_id="w",
                          models_dir=tmp_path / "models", name=name).model_id


def test_adapters_follow_the_registry(store: Any, tiny_model: Path, tmp_path: Path, vllm: FakeVLLM) -> None:
    register_base_model(store, model_id="base-tiny", name="tiny", path=tiny_model)
    promote(store, "base-tiny")
    first, second = (_adapter(store, tiny_model, tmp_path, n) for n in ("first", "second"))
    vllm.loras["someone-elses-lora"] = "/elsewhere"  # not ours: left alone

    def sync() -> list[str]:
        with httpx.Client(base_url=vllm.url, trust_env=False) as http:
            return sync_once(http, Catalog.build(list_models(store), tiny_model))

    def path(model_id: str) -> str:
        return str(tmp_path / "models" / model_id / "adapter")

    # sorted both sides: ids made in the same second order by their random suffix
    assert sorted(sync()) == sorted([f"load {first}", f"load {second}"])  # the base is champion: no champion LoRA
    assert sync() == []  # nothing changed, nothing done
    promote(store, first)
    champions = ["champion", *(f"champion:{s}" for s in SPECIALIZATIONS)]
    assert sorted(sync()) == sorted(f"load {n}" for n in champions)
    assert vllm.loras == {"someone-elses-lora": "/elsewhere", first: path(first), second: path(second),
                          **dict.fromkeys(champions, path(first))}
    promote(store, second)  # every champion name moves: unloaded, then loaded from the new folder
    assert sync() == [f"unload {n}" for n in champions] + [f"load {n}" for n in champions]
    assert {n: vllm.loras[n] for n in champions} == dict.fromkeys(champions, path(second))
    promote(store, "base-tiny")  # the base again: the champion names leave vLLM
    assert sorted(sync()) == sorted(f"unload {n}" for n in champions)
    assert set(vllm.loras) == {"someone-elses-lora", first, second}
