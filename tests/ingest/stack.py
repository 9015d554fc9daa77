"""Runs `art up` as a subprocess with its own data directory, as a user would."""

from __future__ import annotations

from stack.launcher import StackProcess


class RunningStack(StackProcess):
    """The stack the ingestion tests start, kill and query (``stack.launcher.StackProcess``)."""
