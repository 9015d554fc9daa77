"""ClickHouse access shared by the sink, the stream's repair path, the trainer and the CLI."""
