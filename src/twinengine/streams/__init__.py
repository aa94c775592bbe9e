"""Real-time data from the physical twin: durable streams, ingestion, functions on arrival, buffers."""
