"""Floors: the least code that produces the same HTTP answer, to measure the app against."""
