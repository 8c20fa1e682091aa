"""Building and running programs: correctness against numpy, then timing."""

from .check import Measurement, build, measure_program

__all__ = ["Measurement", "build", "measure_program"]
