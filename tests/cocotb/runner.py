"""The cocotb runner for the test benches (in the package, so that replay shares it)."""

from host.gatesim.runner import BUILD_ROOT, PROJECT_ROOT, run_cocotb, selected_simulator

__all__ = ["BUILD_ROOT", "PROJECT_ROOT", "run_cocotb", "selected_simulator"]
