"""The one failure a benchmark reports instead of a figure."""


class BenchError(Exception):
    """A precondition or a check failed (tool missing, non-2xx answers, wrong payload)."""
