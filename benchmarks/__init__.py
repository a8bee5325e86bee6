"""Benchmarks: one script per figure, each with its baseline measured in the same run."""
