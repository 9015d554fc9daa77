"""The pieces every `art` command shares: consoles, output formats, the config option, store clients,
logging and the one error boundary. Imports only ``schemas`` and ``store`` (tests/test_architecture.py),
so every package's command module may use it."""
