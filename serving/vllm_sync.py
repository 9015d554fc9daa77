"""`art vllm-sync`: keep a vLLM server's LoRA adapters equal to the model registry (production).

vLLM started with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` loads adapters at
run time (``POST /v1/load_lora_adapter``, ``/v1/unload_lora_adapter``) and lists them in
``/v1/models`` with their folder as ``root``. Each poll compares that list with the names `art serve`
would answer to (``serving.catalog``: model ids, ``champion``, ``champion:<specialization>``) and
loads, moves or drops adapters until they match; names stay out of the way of other models vLLM
serves. A failed call is logged and retried on the next poll.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from serving.catalog import CHAMPION, Catalog
from trainer.specializations import SPECIALIZATIONS

log = logging.getLogger(__name__)


def desired_adapters(catalog: Catalog) -> dict[str, str]:
    """LoRA name -> adapter folder, for every name the registry gives an adapter."""
    names = [m for m in catalog.models if m != catalog.base_id]
    names += [CHAMPION, *(f"{CHAMPION}:{s}" for s in SPECIALIZATIONS)]
    out = {}
    for name in names:
        target = catalog.resolve(name)
        if target.adapter is not None:
            out[name] = str(target.adapter.path)
    return out


def loaded_adapters(models: dict[str, Any]) -> dict[str, str]:
    """LoRA name -> folder from vLLM's ``/v1/models`` (adapters are the entries with a ``parent``)."""
    return {m["id"]: str(m.get("root", "")) for m in models.get("data", []) if m.get("parent")}


def sync_once(http: httpx.Client, catalog: Catalog) -> list[str]:
    """One reconciliation; returns what it did (``load NAME``, ``unload NAME``)."""
    want = desired_adapters(catalog)
    response = http.get("/v1/models")
    response.raise_for_status()
    have = loaded_adapters(response.json())
    done: list[str] = []
    for name, path in have.items():
        if want.get(name) != path and (name in want or name.startswith(CHAMPION) or name in catalog.models):
            http.post("/v1/unload_lora_adapter", json={"lora_name": name}).raise_for_status()
            done.append(f"unload {name}")
    for name, path in want.items():
        if have.get(name) != path:
            http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}).raise_for_status()
            done.append(f"load {name}")
    return done
