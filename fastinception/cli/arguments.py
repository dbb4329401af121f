"""argparse value types shared by the commands: numbers that must be positive (or not negative)."""
import argparse
import math


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
