"""Benchmarks: each measures ours against a baseline in the same run (`art bench --help`)."""
