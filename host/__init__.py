"""tickgate host side: register map, driver, transports and the ``tickgate`` command line."""
