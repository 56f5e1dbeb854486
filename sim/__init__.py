"""tickgate reference model: every gateware stage as plain Python (no Amaranth import).

The model is the specification the gateware is verified against, bit for bit, and a library a quant
can use on its own.
"""
