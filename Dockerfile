# One image for every ART Stream process in production: stream worker, sink, trainer, init, CLI.
# The pipeline installs without torch; build with EXTRAS=train for the trainer (transformers + peft).
# Pip picks torch's default build for the platform; point PIP_EXTRA_INDEX_URL at a CPU-only wheel
# index when the trainer runs without a GPU, to avoid the multi-GB CUDA build.
FROM python:3.11-slim-bookworm

ARG EXTRAS=""
ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/art-stream
COPY pyproject.toml README.md ./
COPY cli ./cli
COPY config ./config
COPY schemas ./schemas
COPY store ./store
COPY streams ./streams
COPY consumers ./consumers
COPY trainer ./trainer
COPY agents ./agents
COPY judges ./judges
COPY stack ./stack
COPY bench ./bench
COPY serving ./serving
COPY ui ./ui
COPY learning ./learning
RUN pip install ".${EXTRAS:+[${EXTRAS}]}" \
    && useradd --create-home --uid 10001 art \
    && mkdir -p /srv/art/art-data \
    && chown -R art /srv/art

# Processes run from /srv/art, so the default data_dir (art-data) is /srv/art/art-data: a volume
# for the trainer's models and checkpoints; workers and sinks keep nothing there that matters.
USER art
WORKDIR /srv/art
CMD ["art", "--help"]
