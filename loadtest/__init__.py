"""Load tests (locust) with an SLO gate, and benchmarks that write BENCHMARKS.md."""
