"""The Kafka worker: consumer group, transactions, partition state, global tables."""
