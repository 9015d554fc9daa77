"""Learning from own runs: evaluate a served model on the held-out suite, promote by outcome, loop."""
