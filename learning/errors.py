"""The root error of the learning package: its message is what the CLI prints."""


class LearningError(Exception):
    """Evaluation, promotion or a loop round could not go on (the message says why and what to do)."""
