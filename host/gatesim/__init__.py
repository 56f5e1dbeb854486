"""Running the gateware in a Verilog simulator under cocotb: the runner and the stream drivers.

Shared by the test benches in ``tests/cocotb`` and by ``tickgate replay``, so the replay tool
drives the gateware exactly the way the verified test benches do.
"""
