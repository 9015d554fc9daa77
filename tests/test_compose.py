"""docker-compose.yml is valid, complete and differs from the embedded default only where it must.

Validated by a real Compose parser when one is installed: ``docker compose config`` (the v2
plugin) or Debian's standalone ``docker-compose`` 1.29 (``apt-get install docker-compose``);
neither needs a Docker engine for ``config``. The structural checks run on the parser's
normalised output, or on the file itself through PyYAML when no parser exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ART_ENV = {"ART_KAFKA_BOOTSTRAP", "ART_CLICKHOUSE_DSN", "ART_KAFKA_SCHEMA_REGISTRY_URL"}
OURS = ("init", "worker", "sink", "trainer", "vllm-sync", "proxy", "otlp")
GPU = {"vllm", "vllm-sync"}  # the `gpu` profile: production serving, not started by default


def compose_command() -> list[str] | None:
    """A Compose CLI able to run ``config``: the v2 plugin, else the standalone binary."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_config(cmd: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ART_", "COMPOSE_"))}
    return subprocess.run([*cmd, "-f", str(COMPOSE), "config", *extra], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The normalised model from a real parser, or the raw file when none is installed."""
    cmd = compose_command()
    if cmd is None:
        return yaml.safe_load(COMPOSE.read_text())
    done = run_config(cmd)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.mark.skipif(compose_command() is None,
                    reason="no Compose CLI (apt-get install docker-compose, or the docker compose plugin)")
def test_a_real_parser_accepts_the_file() -> None:
    done = run_config(compose_command() or [], "-q")
    assert done.returncode == 0, done.stderr
    everything = {"kafka", "clickhouse", "schema-registry", *OURS, "vllm"}
    services = set(run_config(compose_command() or [], "--services").stdout.split())
    assert everything - GPU <= services <= everything  # Compose v1 lists profiled services too
    with_gpu = run_config([*(compose_command() or []), "--profile", "gpu"], "--services")
    assert set(with_gpu.stdout.split()) == everything


def test_infrastructure_is_the_official_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert str(services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")


def test_every_long_running_service_has_a_healthcheck_and_dependencies_wait_for_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name != "init":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("worker", "sink", "trainer"):
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully"
        assert depends["clickhouse"]["condition"] == "service_healthy"
    assert services["init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_only_the_three_addresses_differ_from_the_embedded_default(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = []
    for name in OURS:
        env = services[name]["environment"]
        env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
        assert {k for k in env if k.startswith("ART_")} == ART_ENV, name
        envs.append(env)
    assert all(e == envs[0] for e in envs)  # every process sees the same cluster
    assert envs[0]["ART_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert envs[0]["ART_CLICKHOUSE_DSN"].startswith("http://") and "@clickhouse:8123" in envs[0]["ART_CLICKHOUSE_DSN"]
    assert envs[0]["ART_KAFKA_SCHEMA_REGISTRY_URL"] == "http://schema-registry:8081"


def test_workers_and_sinks_scale_and_topics_are_created_up_front(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "sink"):
        assert services[name]["deploy"]["replicas"] > 1
        assert "container_name" not in services[name] and not services[name].get("ports")  # replicas must not clash
    assert "stack.topics_cli" in services["init"]["command"]
    assert "--schema" in services["init"]["command"]
    assert "streams.worker" in " ".join(services["worker"]["command"])
    assert services["sink"]["command"] == ["python", "-m", "consumers.run"]
    assert "art trainer" in " ".join(services["trainer"]["command"])
    assert services["trainer"]["build"]["args"]["EXTRAS"] == "train"


def test_vllm_serves_the_registry_adapters_of_the_trainer(compose: dict[str, Any]) -> None:
    services = compose["services"]
    vllm, sync = services["vllm"], services["vllm-sync"]
    assert set(vllm["profiles"]) == set(sync["profiles"]) == {"gpu"}
    assert vllm["image"].startswith("vllm/vllm-openai:") and "--enable-lora" in vllm["command"]
    assert str(vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"]) == "True"

    def mounts(service: dict[str, Any]) -> set[str]:  # "source:target[:mode]", the source may hold ":-"
        return {(v["target"] if isinstance(v, dict) else v.removesuffix(":ro").rsplit(":", 1)[1])
                for v in service["volumes"]}

    # adapters are read where the trainer wrote them (the registry rows name that path), the base likewise
    assert {"/srv/art/art-data", "/models/base"} <= mounts(vllm) and "/models/base" in mounts(sync)
    assert vllm["command"][vllm["command"].index("--model") + 1] == "/models/base"
    assert sync["command"][:4] == ["art", "vllm-sync", "--url", "http://vllm:8000"]
    assert sync["depends_on"]["vllm"]["condition"] == "service_healthy"
def test_capture_services_listen_publicly_on_their_published_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, port in (("proxy", 8088), ("otlp", 4318)):
        command = services[name]["command"]
        assert command[:4] == ["python", "-m", "agents.capture.run", name]
        assert command[command.index("--host") + 1] == "0.0.0.0" and command[command.index("--port") + 1] == str(port)
        published = {int(p["target"]) if isinstance(p, dict) else int(p.split(":")[-1])
                     for p in services[name]["ports"]}
        assert published == {port}
        assert f"127.0.0.1:{port}/v1/art/health" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    upstream = services["proxy"]["command"][-2:]
    assert upstream[0] == "--upstream"
    assert upstream[1] in ("${ART_PROXY_UPSTREAM:-http://host.docker.internal:8000/v1}",  # raw file
                           os.environ.get("ART_PROXY_UPSTREAM", "http://host.docker.internal:8000/v1"))  # parsed


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka-data", "clickhouse-data", "trainer-data"} <= set(compose["volumes"])

    def targets(name: str) -> set[str]:
        return {(v["target"] if isinstance(v, dict) else v.split(":")[1]) for v in services[name]["volumes"]}

    assert "/var/lib/kafka/data" in targets("kafka")
    assert services["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "/var/lib/clickhouse" in targets("clickhouse")
    assert "/srv/art/art-data" in targets("trainer")


def test_the_image_copies_every_package() -> None:
    includes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in includes}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert packages == copied


def test_topics_cli_creates_topics_with_their_partitions(kafka_bootstrap: str) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    from schemas.topics import Topics

    prefix = f"c{uuid.uuid4().hex[:8]}."
    env = {**os.environ, "ART_KAFKA_TOPIC_PREFIX": prefix, "ART_KAFKA_SESSION_PARTITIONS": "5"}
    for _ in range(2):  # idempotent: the second run finds every topic
        done = subprocess.run([sys.executable, "-m", "stack.topics_cli", "--bootstrap", kafka_bootstrap],
                              capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
        assert done.returncode == 0, done.stderr
    assert "exists  " + prefix + "session-events (5 partitions)" in done.stderr
    topics = Topics(prefix=prefix, session_partitions=5)

    async def partitions() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([t.name for t in topics.all() + topics.internal()])
        finally:
            await admin.close()
        return {d["topic"]: len(d["partitions"]) for d in described}

    assert asyncio.run(partitions()) == {t.name: t.partitions for t in topics.all() + topics.internal()}
