"""``tickgate replay``: one capture through the reference model and the gateware, compared."""
