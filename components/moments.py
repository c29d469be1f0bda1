"""Exact sums of floating-point numbers, for means and standard deviations that come out the
same to the bit however the rows are batched, ordered or split between Beam workers.

A float64 is ``mantissa * 2**exponent`` with a 53-bit integer mantissa; each batch's values
are summed as integers (in pieces small enough that numpy's int64 sums cannot overflow) and
kept as one Python integer scaled by ``2**SHIFT``, so adding and merging never round. The
mean and variance are rounded once, at the end (Python's ``float(Fraction)`` rounds
correctly).
"""

import math
from fractions import Fraction

import numpy as np

# 2**-SHIFT divides every finite float64 (the smallest is 2**-1074 = 2**52 * 2**(-1073 - 53)).
SHIFT = 1126
# Values summed at once: 2**20 pieces of at most 37 bits stay below int64's 63.
_CHUNK = 1 << 20
_PIECE = 18
_MASK = (1 << _PIECE) - 1


class Moments:
    """The count, exact sum and exact sum of squares of a column's finite values."""

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0  # scaled by 2**SHIFT
        self.squares = 0  # scaled by 2**(2 * SHIFT)
        self.non_finite = 0

    def add(self, values: np.ndarray) -> "Moments":
        """Adds float64 values (NaN and infinities are counted apart, not summed)."""
        finite = np.isfinite(values)
        self.non_finite += int((~finite).sum())
        values = values[finite]
        self.count += len(values)
        for start in range(0, len(values), _CHUNK):
            self._add(values[start : start + _CHUNK])
        return self

    def _add(self, values: np.ndarray) -> None:
        fractions, exponents = np.frexp(values)
        mantissas = (fractions * 2.0**53).astype(np.int64)  # exact: |fraction| < 1
        order = np.argsort(exponents, kind="stable")
        exponents = exponents[order]
        mantissas = mantissas[order]
        starts = np.flatnonzero(np.r_[True, exponents[1:] != exponents[:-1]])

        def sums(array: np.ndarray) -> list[int]:
            return [int(total) for total in np.add.reduceat(array, starts)] if len(array) else []

        # mantissa = high * 2**26 + low, with 0 <= low < 2**26 (an arithmetic shift).
        high, low = sums(mantissas >> 26), sums(mantissas & ((1 << 26) - 1))
        # |mantissa| = a * 2**36 + b * 2**18 + c; its square in five sums of < 2**37 each.
        magnitude = np.abs(mantissas)
        a, b, c = magnitude >> 2 * _PIECE, (magnitude >> _PIECE) & _MASK, magnitude & _MASK
        square_sums = [sums(a * a), sums(2 * a * b), sums(2 * a * c + b * b), sums(2 * b * c)]
        square_sums.append(sums(c * c))
        for index, exponent in enumerate(exponents[starts].tolist()):
            self.sum += ((high[index] << 26) + low[index]) << (exponent - 53 + SHIFT)
            square = sum(
                part[index] << (_PIECE * (4 - power)) for power, part in enumerate(square_sums)
            )
            self.squares += square << (2 * (exponent - 53 + SHIFT))

    def merge(self, other: "Moments") -> "Moments":
        """Adds another column part's moments to these."""
        self.count += other.count
        self.sum += other.sum
        self.squares += other.squares
        self.non_finite += other.non_finite
        return self

    def total(self) -> Fraction:
        """The sum of the values, exactly."""
        return Fraction(self.sum, 1 << SHIFT)

    def total_of_squares(self) -> Fraction:
        """The sum of the values' squares, exactly."""
        return Fraction(self.squares, 1 << 2 * SHIFT)

    def _mean(self) -> Fraction:
        return Fraction(self.sum, self.count << SHIFT)

    def mean(self) -> float:
        """The mean, correctly rounded; needs a value."""
        return float(self._mean())

    def std(self) -> float:
        """The population standard deviation (numpy's ``std``): the square root of the
        correctly rounded variance."""
        variance = Fraction(self.squares, self.count << 2 * SHIFT) - self._mean() ** 2
        try:
            return math.sqrt(float(variance))
        except OverflowError:  # beyond float64, as numpy's would be
            return math.inf
