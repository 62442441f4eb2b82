"""shardsim benchmarks: ``python -m bench [suite ...]`` prints one JSON line per figure."""
