"""Zero-change capture: agents that never import the SDK still stream their runs.

Two doors, one destination: ``art proxy`` (an OpenAI-compatible recording proxy) and ``art otlp``
(an OTLP/HTTP receiver for GenAI spans) both turn what they see into the same ``SessionEvent``s
through the tracking SDK (spool, seq numbering and exactly-once rules unchanged). The mapping
modules (``chat``, ``steps``, ``otlp_decode``, ``otlp_map``) are pure; ``proxy`` and ``receiver``
are the HTTP layer around them.
"""
