"""Wire formats and stream beat layouts, declared once.

The field tables themselves live in :mod:`sim.wire` (plain Python, shared with the reference
model); the modules here turn them into Amaranth layouts and constants for the gateware.
"""
