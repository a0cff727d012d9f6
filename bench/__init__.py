"""Fan-out benchmark: a load generator, a bare baseline server and the orchestrator."""
