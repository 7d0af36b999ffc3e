"""What operators see: metrics (Prometheus), structured logs, and the request id that ties an
API request to the worker's lines about its notification."""
