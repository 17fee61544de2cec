"""Work in steps: a generator that yields an estimate of the work it did since its last
yield (microseconds) and returns its result, so a caller can stop between steps (a round in
slices, ``Scheduler(round_slice=...)``) or run it through at once (:func:`drain`)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")


def drain(gen: Generator[float, None, T]) -> T:
    """Run the steps of ``gen`` to the end and return its result."""
    while True:
        try:
            next(gen)
        except StopIteration as e:
            return e.value  # type: ignore[no-any-return]
