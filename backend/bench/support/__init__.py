"""Machinery shared by the benchmarks: database, uvicorn processes, the load tool, reports."""
