"""Agents: the tracking SDK that streams steps, and the ReAct runner that learns from earlier runs."""
