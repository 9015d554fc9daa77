"""Which names the server answers to, rebuilt from the model registry on every poll.

Names: ``base`` (no adapter), ``champion`` (the ``general`` champion), ``champion:<specialization>``
(that specialisation's champion, else the general one), and any registry ``model_id``. A champion
row of objective ``base`` means the base model itself. Adapters trained on another base model
than the one served are listed as incompatible and refused with that reason, never half-loaded.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from serving.engine import Adapter
from trainer.registry import BASE_OBJECTIVE, ModelRecord
from trainer.specializations import GENERAL

log = logging.getLogger(__name__)
BASE_NAME = "base"
CHAMPION = "champion"


class UnknownModel(LookupError):
    """No such name, or a model this server cannot serve (the message says which)."""


@dataclass(frozen=True)
class Target:
    """What a request name resolves to: the model id answering, and its adapter (None: the base)."""

    model_id: str
    adapter: Adapter | None


def same_base(record_base: str, base_dir: Path) -> bool:
    """Whether an adapter trained on ``record_base`` fits the served ``base_dir`` (same folder, or a
    copy with the same config.json, e.g. the same base mounted at another path)."""
    other = Path(record_base)
    if not record_base or not other.exists():
        return False
    if other.resolve() == base_dir.resolve():
        return True
    try:
        theirs, ours = ((p / "config.json").read_text() for p in (other, base_dir))
        return bool(json.loads(theirs) == json.loads(ours))
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Catalog:
    base_dir: Path
    base_id: str = BASE_NAME
    models: dict[str, ModelRecord] = field(default_factory=dict)
    champions: dict[str, ModelRecord] = field(default_factory=dict)
    incompatible: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, records: list[ModelRecord], base_dir: Path) -> Catalog:
        base_id = BASE_NAME
        models: dict[str, ModelRecord] = {}
        incompatible: dict[str, str] = {}
        for r in records:
            if r.objective == BASE_OBJECTIVE:
                if Path(r.path).resolve() == base_dir.resolve():
                    base_id = r.model_id
                    models[r.model_id] = r
                else:
                    incompatible[r.model_id] = f"model {r.model_id} is another base model ({r.path})"
            elif same_base(r.base_model, base_dir):
                models[r.model_id] = r
            else:
                incompatible[r.model_id] = (f"model {r.model_id} was trained on base {r.base_model or '?'}; "
                                            f"this server serves {base_dir}")
        champions: dict[str, ModelRecord] = {}
        for r in sorted(models.values(), key=lambda m: m.updated_at):
            if r.is_champion:
                champions[r.specialization] = r
        return cls(base_dir, base_id, models, champions, incompatible)

    def target_of(self, record: ModelRecord | None) -> Target:
        if record is None or record.objective == BASE_OBJECTIVE:
            return Target(self.base_id, None)
        return Target(record.model_id, Adapter(record.model_id, Path(record.path) / "adapter"))

    def resolve(self, name: str) -> Target:
        if name in (BASE_NAME, self.base_id):
            return Target(self.base_id, None)
        if name == CHAMPION:
            return self.target_of(self.champions.get(GENERAL))
        if name.startswith(CHAMPION + ":"):
            spec = name.split(":", 1)[1]
            return self.target_of(self.champions.get(spec) or self.champions.get(GENERAL))
        if name in self.models:
            return self.target_of(self.models[name])
        if name in self.incompatible:
            raise UnknownModel(self.incompatible[name])
        raise UnknownModel(f"model {name!r} not found: use base, champion, champion:<specialization> or a "
                           "registry model id (GET /v1/models lists them)")

    def names(self) -> list[str]:
        out = [BASE_NAME, CHAMPION, *(f"{CHAMPION}:{s}" for s in sorted(self.champions) if s != GENERAL)]
        return out + [m for m in self.models if m not in out]

    def champion_targets(self) -> dict[str, Target]:
        return {spec: self.target_of(r) for spec, r in self.champions.items()}


class RegistryWatch:
    """Polls the registry every ``interval_s`` on its own thread; ``catalog`` is always the latest
    good snapshot (a failed poll keeps the previous one). ``on_champion`` hears champion changes."""

    def __init__(self, fetch: Callable[[], list[ModelRecord]], base_dir: Path, *, interval_s: float = 1.0,
                 on_champion: Callable[[Target], None] | None = None) -> None:
        self.fetch = fetch
        self.base_dir = base_dir
        self.interval_s = interval_s
        self.on_champion = on_champion
        self.catalog = Catalog(base_dir)
        self.polls = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> Catalog:
        """Poll now (also the admin reload); returns the catalog in force afterwards."""
        with self._lock:
            try:
                fresh = Catalog.build(self.fetch(), self.base_dir)
            except Exception as exc:  # the store may be briefly away; keep serving what we know
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.warning("registry poll failed: %s", self.last_error)
                return self.catalog
            self.last_error = None
            before = self.catalog.champion_targets()
            self.catalog = fresh
            self.polls += 1
        if self.on_champion is not None:
            for spec, target in fresh.champion_targets().items():
                if before.get(spec) != target:
                    log.info("champion of %s is now %s", spec, target.model_id)
                    self.on_champion(target)
        return fresh

    def start(self) -> RegistryWatch:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="registry-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
