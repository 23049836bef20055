"""The file_backed benchmark suite (see docs/benchmarks.md); run it with ``file-backed bench``."""
