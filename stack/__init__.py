"""The embedded stack: the Tansu broker process, the supervisor behind `art up`, and the CLI."""
