"""What every test (the core's and the plugins') shares: a test that runs a target's
programs on a CPU that cannot run them is skipped, with the reason, not failed.

A target's programs may use instructions this host lacks (``Target.host_flags``, e.g. the
avx512 target on a CPU without AVX-512); GTA then refuses to run them
(:class:`gta_core.host.HostCannotRun`) rather than die of SIGILL. A test that reaches that
refusal in its own process is skipped with its line; one that runs GTA in a child process
(the command line, a bench) says so with ``@pytest.mark.runs("avx512")``. On a host that has
the features the same tests run in full.
"""

from __future__ import annotations

import pytest

from gta_core.host import HostCannotRun, cannot_run
from gta_core.plugins import default_registry


def pytest_configure(config):
    config.addinivalue_line("markers", "runs(target): runs TARGET's programs (skipped, with "
                            "the reason, on a CPU that cannot)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("runs"):
        why = cannot_run(default_registry().target(mark.args[0]))
        if why is not None:
            pytest.skip(why)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(HostCannotRun):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: {call.excinfo.value}")
