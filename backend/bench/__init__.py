"""Load benchmarks. Each module runs one scenario against a real server and PostgreSQL."""
