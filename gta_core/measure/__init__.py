"""Building and running programs: correctness against numpy, then timing."""

from .check import Measurement, measure_program

__all__ = ["Measurement", "measure_program"]
