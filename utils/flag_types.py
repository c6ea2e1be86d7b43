"""Range-checked argparse types for every numeric flag, so a value out of range is one `error:`
line at parse time (naming the flag, the value and the range) instead of a traceback or a run
that learns nothing."""
import argparse
import math


class Bounded:
    """An int or float type with inclusive / exclusive bounds, e.g. Bounded(int, low=1)."""

    def __init__(self, kind, low=None, high=None, low_open: bool = False, high_open: bool = False, why: str = ""):
        self.kind, self.low, self.high, self.low_open, self.high_open, self.why = kind, low, high, low_open, high_open, why
        self.__name__ = kind.__name__  # argparse names the type in its messages

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return f"{noun} {' and '.join(parts)}" if parts else noun

    def __call__(self, text):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.describe()}") from None
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite; expected {self.describe()}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            why = f" ({self.why})" if self.why else ""
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected {self.describe()}{why}")
        return value

    def out_of_range(self) -> str:
        """A value this type refuses (for tests)."""
        if self.low is not None:
            return str(self.low if self.low_open else self.low - 1)
        return str(self.high if self.high_open else self.high + 1)


POSITIVE_INT = Bounded(int, low=1)
NONNEGATIVE_INT = Bounded(int, low=0)
POSITIVE = Bounded(float, low=0, low_open=True)
NONNEGATIVE = Bounded(float, low=0)
FRACTION = Bounded(float, low=0, high=1, low_open=True, high_open=True)  # strictly between 0 and 1
PROBABILITY = Bounded(float, low=0, high=1)
MOMENTUM = Bounded(float, low=0, high=1, high_open=True)
DECAY = Bounded(float, low=0, high=1, low_open=True)
BATCH = Bounded(int, low=2, why="BatchNorm needs at least 2 samples in a training batch")
IMAGE_SIDE = Bounded(int, low=16, why="the ResNet's five stride-2 stages need a frame of at least 16 pixels")
SECONDS = Bounded(float, low=0.1, why="the audio front ends need at least 0.1 s")
MEL_BANDS = Bounded(int, low=8, why="the speaker encoder pools mel bands 8 to 1")
