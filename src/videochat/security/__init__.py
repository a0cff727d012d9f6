"""Cross-cutting protections: rate limits and security headers."""
