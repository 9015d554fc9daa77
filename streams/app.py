"""The Faust application, built from configuration (nothing else lives here)."""

from __future__ import annotations

import faust

from config.settings import ArtConfig
from schemas.limits import MAX_MESSAGE_BYTES
from streams.transport import StreamApp


def create_app(cfg: ArtConfig, bootstrap: str, web_port: int) -> faust.App:
    """One App per worker process; ids carry the topic prefix so tenants never share groups."""
    app = StreamApp(
        id=f"{cfg.kafka.topic_prefix}stream",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=cfg.kafka.session_partitions,
        topic_replication_factor=1,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,  # a trajectory may hold up to MAX_TRAJECTORY_BYTES
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        web_enabled=True,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=web_port,
        web_in_thread=False,
        stream_wait_empty=False,
        table_standby_replicas=0,
        datadir=str(cfg.storage.data_dir / "faust"),
    )
    app.fetch_max_wait_ms = cfg.stream.fetch_max_wait_ms
    return app
