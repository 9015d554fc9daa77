"""The one error of configuration: a file, key or variable with a value it cannot take.

Its own class (not a SchemaError): a bad art.toml is the operator's to fix, a bad record the producer's.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Configuration names a key with a value it cannot take; ``str`` names the key and where it came from."""
