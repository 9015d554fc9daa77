"""Faust stream processing: per-session state, trajectory assembly, judging and rewards."""
