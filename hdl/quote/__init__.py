"""Quoting and order entry: the quoter's pricing engine, the risk gate, OUCH encode/decode."""
