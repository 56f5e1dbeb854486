"""``tickgate host``: settings files, the commands on a simulated board, and the serial path
end to end through a real pseudo-terminal."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host.cli import main
from host.commands.host import load_settings
from host.regmap import REGMAP

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = """
[net]
mac = "02:00:5e:10:00:01"
ip = "233.54.12.111"
port = 26477

[quote.all]
size = 150
tick_size = 100

[quote.1]
enable = true
fair_value_mode = "MICROPRICE"
size = 300

[risk.1]
max_long = 1000
max_short = 800

[port_limits]
rate_tokens = 10
"""


def test_settings_file_slots_all_and_overrides():
    values = load_settings(SETTINGS)
    assert values["net.ip"] == "233.54.12.111"
    assert [values[f"quote[{i}].size"] for i in range(4)] == [150, 300, 150, 150]
    assert values["quote[1].fair_value_mode"] == "MICROPRICE"
    assert values["risk[1].max_short"] == 800 and "risk[0].max_short" not in values


@pytest.mark.parametrize("text, message", [
    ("[nothing]\na = 1", r"unknown block \[nothing\]"),
    ("[quote.8]\nsize = 1", r"slots are 0\.\.7"),
    ("[quote.0]\nsise = 1", r"no register 'quote\[0\]\.sise'"),
    ("[ctrl]\nbogus = 1", r"no register 'ctrl\.bogus'"),
])
def test_settings_file_errors_name_the_culprit(text, message):
    with pytest.raises(KeyError, match=message):
        load_settings(text)


def test_commands_on_a_board_simulated_in_process(tmp_path, capsys):
    settings = tmp_path / "params.toml"
    settings.write_text(SETTINGS)
    assert main(["host", "--sim", "set", str(settings), "quote[0].levels=2"]) == 0
    assert "set 25 registers, committed and verified" in capsys.readouterr().out
    assert main(["host", "--sim", "get", "ctrl.magic", "quote[0].fair_value_mode"]) == 0
    out = capsys.readouterr().out
    assert "ctrl.magic                0x544B4754" in out and "MID" in out
    assert main(["host", "--sim", "arm"]) == 0
    assert "armed=yes" in capsys.readouterr().out
    assert main(["host", "--sim", "status"]) == 0
    out = capsys.readouterr().out
    assert f"map 0x{REGMAP.hash:08X}" in out and "armed      no" in out
    assert main(["host", "--sim", "watch", "--count", "2", "--interval", "0"]) == 0
    assert "slot" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["host", "--sim", "set", "quote[2].levels=4"],
     "quote[2].levels: value 4 is outside the allowed range [1, 3] levels"),
    (["host", "--sim", "set", "ctrl.cycles=4"], "ctrl.cycles is read-only"),
    (["host", "--sim", "get", "quote[9].size"], "no register 'quote[9].size'"),
    (["host", "set", "ctrl.scratch=1"], "give exactly one of --port DEVICE or --sim"),
    (["host", "--port", "/nonexistent/tty", "status"], "cannot open /nonexistent/tty"),
])
def test_errors_are_one_clear_line_and_exit_status_1(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


class SimBoardProcess:
    """``tickgate host sim-board`` in its own process, as a user would start it."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "host.cli", "host", "sim-board"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        if not ready:
            self.stop()
            raise RuntimeError("the simulated board did not start")
        self.path = self.process.stdout.readline().strip()
        assert self.path.startswith("/dev/"), self.path

    def cli(self, *args, check=True):
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "host.cli", "host", "--port", self.path, "--timeout", "20",
             *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=300)
        self.seconds = time.monotonic() - started
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


def test_cli_drives_a_simulated_board_through_a_pseudo_terminal(tmp_path):
    settings = tmp_path / "params.toml"
    settings.write_text(SETTINGS)
    board = SimBoardProcess()
    try:
        status = board.cli("status").stdout
        assert f"map 0x{REGMAP.hash:08X}" in status and "armed      no" in status
        assert "committed and verified" in board.cli("set", str(settings)).stdout
        # Refused before anything is written: the valid value next to it is not applied.
        bad = board.cli("set", "quote[1].size=5", "risk[1].max_order_qty=1000000", check=False)
        assert bad.returncode == 1
        assert "risk[1].max_order_qty: value 1000000 is outside the allowed range " \
               "[0, 999999] shares" in bad.stderr
        got = board.cli("get", "quote[1].size", "quote[1].fair_value_mode", "net",
                        "risk[1].max_short").stdout
        assert "quote[1].size             300 shares" in got
        assert "MICROPRICE" in got and "233.54.12.111" in got and "02:00:5e:10:00:01" in got
        assert "800 shares" in got
        assert "armed=yes" in board.cli("arm").stdout
        killed = board.cli("kill").stdout
        assert "armed=no killed=yes" in killed
        # The link saw only good frames.
        link = board.cli("get", "bridge_stats").stdout
        for counter in ("bad_crc", "bad_command", "bad_length", "timeout", "uart_framing",
                        "uart_overrun", "junk"):
            assert f"bridge_stats.{counter} " in link
            line = next(line for line in link.splitlines() if f".{counter} " in line)
            assert line.split()[1] == "0", line
    finally:
        board.stop()
