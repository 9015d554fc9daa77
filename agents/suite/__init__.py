"""The built-in mission suite: task families the runner's tools can solve, split train / held-out.

Why a suite of our own: "did the agent get better" needs tasks whose success is checked exactly,
that come in families (so a curve can say what improved), and whose held-out half is phrased and
numbered in ways the training half never shows (so a better score means a better policy, not a
memorised answer). Every mission is generated from a fixed seed: the same split is the same list
of missions, byte for byte, on every machine.
"""

from agents.suite.families import FAMILIES, Family
from agents.suite.missions import SPLITS, SuiteMission, build_suite, check_outcome, prepare_sandbox

__all__ = ["FAMILIES", "SPLITS", "Family", "SuiteMission", "build_suite", "check_outcome", "prepare_sandbox"]
