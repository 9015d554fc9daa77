"""The task families of the built-in suite and how each one draws a mission.

Every family has two disjoint sets of phrasings and two disjoint number ranges (and, where names
appear, two disjoint name lists): the training split draws from the first, the held-out split from
the second. So a held-out mission never repeats a training objective, a training number range or a
training phrasing, and a model that improves on held-out has learned the skill, not the answers.

Training phrasings name the tools to use ("with file_read, then the calculator"); held-out ones
never do. A 135M model almost never finds a multi-tool procedure on its own (0 of 48 sampled runs
of the unhinted tasks succeeded), and a loop can only learn from successes it samples: the hints
make the procedures reachable in training, and the held-out split measures whether the policy
learned to apply them when nobody names the tools. The operations overlap (both splits add to and
multiply a file's number, `files` subtracts too), the phrasings and number ranges never do. Every held-out
family that reads a number asks for more than one operation: when held-out `files` and `chain` only
multiplied, a round-1 champion that had learned to multiply every number it read (a training "add 41"
became "277 * 41") scored 1.00 on both, a shortcut, not the skill.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

Split = str  # "train" | "heldout"


@dataclass(frozen=True)
class Draft:
    """One drawn mission: the objective, the files its sandbox starts with, and what success is."""

    objective: str
    answer: str
    files: dict[str, str] = field(default_factory=dict)
    expect_files: dict[str, str] = field(default_factory=dict)


Draw = Callable[[random.Random, Split], Draft]


@dataclass(frozen=True)
class Family:
    name: str
    tools: tuple[str, ...]
    tool_calls: int  # the fewest tool calls that solve it
    max_iterations: int
    draw: Draw
    description: str


def _pick(rng: random.Random, split: Split, train: list[str], heldout: list[str]) -> str:
    return rng.choice(train if split == "train" else heldout)


# --- arithmetic: one calculator call ----------------------------------------------------------

def _arith(rng: random.Random, split: Split) -> Draft:
    if split == "train":
        a, b, c = rng.randint(11, 39), rng.randint(11, 39), rng.randint(2, 29)
        forms = [("Use the calculator: what is {a} * {b} + {c}?", a * b + c),
                 ("With the calculator, compute {a} * {b} - {c}.", a * b - c),
                 ("Use the calculator to work out ({a} + {c}) * {b}.", (a + c) * b)]
    else:
        a, b, c = rng.randint(41, 89), rng.randint(41, 89), rng.randint(41, 99)
        forms = [("Find the value of {a} multiplied by {b}, minus {c}.", a * b - c),
                 ("How much is {c} added to the product of {a} and {b}?", a * b + c),
                 ("Multiply the sum of {a} and {c} by {b}. What number do you get?", (a + c) * b)]
    text, value = rng.choice(forms)
    return Draft(text.format(a=a, b=b, c=c), str(value))


# --- lookup + arithmetic: find a price, then compute ------------------------------------------

_TRAIN_ITEMS = ["apple", "lamp", "rope", "candle", "basket", "hammer", "kettle", "blanket", "bucket", "shovel",
                "bottle", "pillow"]
_HELDOUT_ITEMS = ["lantern", "saddle", "compass", "barrel", "helmet", "anchor", "mirror", "ladder", "carpet",
                  "blade", "drum", "wagon"]


def _lookup(rng: random.Random, split: Split) -> Draft:
    items = _TRAIN_ITEMS if split == "train" else _HELDOUT_ITEMS
    shown = rng.sample(items, 5)
    lo, hi = (12, 48) if split == "train" else (52, 97)
    prices = {item: rng.randint(lo, hi) for item in shown}
    item = shown[rng.randrange(5)]
    n = rng.randint(3, 9) if split == "train" else rng.randint(11, 19)
    train = ["Use lookup to find the price of a {item}, then the calculator to get the cost of {n} of them.",
             "Get the {item} price with lookup, then multiply it by {n} with the calculator."]
    heldout = ["Buying {n} {item}s: how many coins is that in total? Prices are in the reference files.",
               "Find the unit price of the {item} in the reference files; what is {n} times that price?"]
    forms = train if split == "train" else heldout
    listing = "".join(f"price of a {i}: {p} coins\n" for i, p in prices.items())
    return Draft(rng.choice(forms).format(item=item, n=n), str(n * prices[item]), files={"facts/prices.txt": listing})


# --- file read + arithmetic -------------------------------------------------------------------

_TRAIN_FILES = ["ledger", "stock", "tally", "count", "total", "score"]
_HELDOUT_FILES = ["inventory", "balance", "meter", "reading", "reserve", "supply"]


def _files(rng: random.Random, split: Split) -> Draft:
    name = _pick(rng, split, _TRAIN_FILES, _HELDOUT_FILES)
    path = f"data/{name}.txt"
    if split == "train":
        v, k = rng.randint(120, 480), rng.randint(11, 49)
        forms = [("Read {p} with file_read, then use the calculator to add {k} to its number.", v + k),
                 ("Use file_read on {p}, then the calculator to subtract {k} from the number.", v - k),
                 ("Read {p} with file_read, then use the calculator to multiply its number by {k}.", v * k)]
    else:
        v, k = rng.randint(510, 990), rng.randint(3, 9)
        forms = [("What is the number in {p} times {k}?", v * k),
                 ("Take the value written in {p}, multiply it by {k}, and report the result.", v * k),
                 ("What is the number in {p} plus {k}?", v + k),
                 ("Take the value written in {p}, lower it by {k}, and report the result.", v - k)]
    text, value = rng.choice(forms)
    return Draft(text.format(p=path, k=k), str(value), files={path: f"{v}\n"})


# --- multi-step: read, compute, write (three tool calls) --------------------------------------

def _chain(rng: random.Random, split: Split) -> Draft:
    src = f"data/{_pick(rng, split, _TRAIN_FILES, _HELDOUT_FILES)}.txt"
    dst = f"out/{_pick(rng, split, ['result', 'answer', 'sum'], ['report', 'product', 'output'])}.txt"
    if split == "train":
        v, k = rng.randint(120, 480), rng.randint(11, 49)
        text, value = rng.choice([
            ("Read {src} with file_read, add {k} to its number with the calculator, save the result to "
             "{dst} with file_write, then answer with the result.", v + k),
            ("Read {src} with file_read, multiply its number by {k} with the calculator, save the result to "
             "{dst} with file_write, then answer with the result.", v * k)])
    else:
        v, k = rng.randint(510, 990), rng.randint(3, 9)
        text, value = rng.choice([
            ("Multiply the number in {src} by {k}; save the product in {dst} and reply with it.", v * k),
            ("Add {k} to the number in {src}; save the sum in {dst} and reply with it.", v + k)])
    return Draft(text.format(src=src, k=k, dst=dst), str(value), files={src: f"{v}\n"},
                 expect_files={dst: str(value)})


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("arith", ("calculator",), 1, 3, _arith, "arithmetic with the calculator"),
    Family("lookup", ("lookup", "calculator"), 2, 4, _lookup, "look up a price, then compute a total"),
    Family("files", ("file_read", "calculator"), 2, 4, _files, "read a number from a file, then compute"),
    Family("chain", ("file_read", "calculator", "file_write"), 3, 5, _chain,
           "read a file, compute, write the result to a file, answer"),
)}
