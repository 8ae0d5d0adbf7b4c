"""extraction-watch: the Kafka shell (app, agents, topics, CLI) around the pure ``models``."""
