"""Settings shared by the core tests: the Hypothesis profiles of the fuzz tests.

"gsvnet-fuzz" (every run): 60 examples per test, derandomized, so a run is repeatable and
bounded. "gsvnet-fuzz-long" (tests marked slow, `make test-all`): 2000 random examples per test;
a failure prints the blob that replays it (@reproduce_failure). Neither writes an example
database into the checkout. The profiles are registered, not loaded: a test picks one with
@settings(settings.get_profile(...)), so other suites' Hypothesis settings are left alone.

`without_numba`: numba made unimportable for one test, and the cached answer of
`output_stage.compiled_kernel_available` cleared before and after, so the host kernels' fallbacks run.
"""
import builtins
import sys

import pytest
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the fuzz tests skip themselves
    pass
else:
    settings.register_profile("gsvnet-fuzz", max_examples=60, derandomize=True, deadline=None,
                              database=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("gsvnet-fuzz-long", max_examples=2000, derandomize=False,
                              deadline=None, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture
def without_numba(monkeypatch):
    from gsvnet_ros import output_stage

    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == "numba" or name.startswith("numba."):
            raise ImportError("No module named 'numba'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_numba)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    output_stage.compiled_kernel_available.cache_clear()
    yield
    output_stage.compiled_kernel_available.cache_clear()
