"""Small driver scripts for the peer downloaders compared in benchmarks/bench.py."""
