"""Running it: /metrics, /readyz, log format, the redacting access log, TLS."""
