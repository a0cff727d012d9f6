"""Storage: engine, sessions, ORM models and migrations."""
