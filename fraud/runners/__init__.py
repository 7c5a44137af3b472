"""Where events come from and decisions go: embedded (files, stdin) and Kafka."""
