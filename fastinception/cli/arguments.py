"""argparse value types shared by the commands: numbers that must be positive (or not negative), seeds torch
accepts, thread counts this machine has."""
import argparse
import math
import os

# torch.manual_seed and torch.Generator.manual_seed take a uint64 and also a negative int64 (wrapped modulo 2**64);
# anything outside raises "Overflow when unpacking long long" deep in the run.
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1
FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max, without importing torch here


def _number(text: str, kind, ok, wanted: str):
    try:
        value = kind(text)
    except ValueError:
        value = math.nan
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v == v and v > 0, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v == v and v >= 0, "0 or more")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < math.inf, "a positive number")


def positive_float32(text: str) -> float:
    """A positive number a float32 can hold: an SGD step scales float32 parameters by it."""
    return _number(text, float, lambda v: 0 < v <= FLOAT32_MAX, f"a positive number up to {FLOAT32_MAX:.7g} (float32)")


def seed(text: str) -> int:
    """A seed torch accepts, checked here rather than by a traceback once the run has started."""
    return _number(text, int, lambda v: SEED_MIN <= v <= SEED_MAX, f"an integer from {SEED_MIN} to {SEED_MAX}")


def thread_count(text: str) -> int:
    """1 to the number of CPUs: more threads than CPUs only stall each other (and past 2**31 torch overflows)."""
    cpus = os.cpu_count() or 1
    return _number(text, int, lambda v: 1 <= v <= cpus, f"a positive integer up to {cpus} (the CPUs here)")
