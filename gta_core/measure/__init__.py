"""Building and running programs: correctness against numpy, then timing."""

from .check import Measurement, build, measure_program, runnable
from .garbage import garbage, garbage_output
from .runners import Outcome, make_builder, make_runner, measure_batch
from .settings import (
    MeasureSettings,
    RPCSettings,
    RPCSpecError,
    RPCUnavailable,
    flushed_to_fit,
    model_settings,
    parse_rpc,
)

__all__ = ["MeasureSettings", "Measurement", "Outcome", "RPCSettings", "RPCSpecError",
           "RPCUnavailable", "build", "flushed_to_fit", "garbage", "garbage_output", "make_builder",
           "make_runner", "measure_batch", "measure_program", "model_settings", "parse_rpc",
           "runnable"]
