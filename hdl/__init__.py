"""tickgate gateware: Amaranth components, one concern per file, joined by streams."""
