"""Plain aiokafka consumers: the ClickHouse sink and replay, with commits after durable writes."""
