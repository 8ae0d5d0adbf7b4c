"""Pure statistics and detectors for extraction-watch: no Kafka, no I/O, time passed in."""
