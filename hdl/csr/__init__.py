"""The control plane: every register declared once, the bank built from it, the host link.

- :mod:`~hdl.csr.reg`: declaration primitives (access modes, typed registers, blocks) and the
  builder that assigns addresses; :mod:`~hdl.csr.params`: the quote and risk parameter classes;
  :mod:`~hdl.csr.map`: the design's register map (plain Python apart from the stage layouts
  it derives counters from).
- :mod:`~hdl.csr.bus`, :mod:`~hdl.csr.bank`: the CSR bus and the register bank.
- :mod:`~hdl.csr.control`: arm/kill, the heartbeat watchdog, the cycle counter.
- :mod:`~hdl.csr.protocol`, :mod:`~hdl.csr.uart`, :mod:`~hdl.csr.bridge`: the UART register
  bridge and its frame format.
- :mod:`~hdl.csr.plane`: all of it as the one component the core instantiates.
- :mod:`~hdl.csr.docgen`: ``docs/registers.md`` and the C header, generated.
"""
