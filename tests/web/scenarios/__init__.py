"""Browser scenarios, each run as its own process inside a loopback-only network namespace."""
