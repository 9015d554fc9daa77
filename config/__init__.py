"""Configuration: ``art.toml`` and ``ART_*`` variables, read by every process (settings.py)."""
