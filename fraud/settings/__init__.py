"""Pipeline and Kafka settings, read from YAML and the environment."""
