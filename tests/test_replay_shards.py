"""``tickgate replay --jobs N`` and ``--dask ADDRESS``: the instruments split into shards, run
in worker processes or on a Dask cluster, merged into the report one job gives."""

import json

import pytest

from host.cli import main
from host.replay.loop import trading_figures
from host.replay.shards import split
from sim.capture import write_pcap
from sim.generator import SessionConfig, captured, default_instruments, generate_frames

SYMBOLS = [i.symbol for i in default_instruments(4)]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    config = SessionConfig(seed=5, messages=3000, instruments=default_instruments(4))
    path = tmp_path_factory.mktemp("shards") / "session.pcap"
    write_pcap(path, captured(config, generate_frames(config)))
    return path


def test_split_deals_round_robin():
    a, b, c, d = SYMBOLS
    assert split(SYMBOLS, 2) == [(a, c), (b, d)]
    assert split(SYMBOLS, 9) == [(s,) for s in SYMBOLS]
    assert split(["AAPL"], 0) == [("AAPL",)]


def _replay(capture, tmp_path, name, *options) -> dict:
    report = tmp_path / f"{name}.json"
    assert main(["replay", str(capture), "--symbols", ",".join(SYMBOLS), "--json", str(report),
                 *options]) == 0
    return json.loads(report.read_text())


def test_shards_give_every_instrument_the_figures_of_one_job(tmp_path, capture):
    one = _replay(capture, tmp_path, "one", "--model-only")
    two = _replay(capture, tmp_path, "two", "--model-only", "--jobs", "2")
    three = _replay(capture, tmp_path, "three", "--model-only", "--jobs", "3")
    assert one["model"]["instruments"] == two["model"]["instruments"] == three["model"][
        "instruments"]
    assert [i["symbol"] for i in two["model"]["instruments"]] == SYMBOLS
    assert one["model"]["orders"] == two["model"]["orders"] > 500
    assert one["model"]["denials"] == two["model"]["denials"]
    assert sum(i["fills"] for i in one["model"]["instruments"]) > 20


def test_gateware_shards_on_a_local_dask_cluster(tmp_path, capture):
    """Two shards of one instrument each, model and gateware, on a two-worker cluster; the
    merged report has no mismatch and the instruments' figures of the unsharded model."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        data = _replay(capture, tmp_path, "dask", "--limit", "2", "--symbols", "AAPL,MSFT",
                       "--max-gap", "300", "--latency", "200", "--dask", cluster.scheduler_address)
    one = _replay(capture, tmp_path, "one", "--limit", "2", "--symbols", "AAPL,MSFT",
                  "--max-gap", "300", "--latency", "200", "--model-only")
    assert data["mismatches"] == 0, data["differences"]
    assert (trading_figures(data["gateware"]["instruments"])
            == trading_figures(data["model"]["instruments"])
            == trading_figures(one["model"]["instruments"]))
    assert data["gateware"]["orders"] > 10
    assert data["gateware"]["tick_to_order_cycles"]["samples"] > 0


def test_jobs_must_be_positive(capsys, capture):
    assert main(["replay", str(capture), "--model-only", "--jobs", "0"]) == 1
    assert "--jobs is 1 or more" in capsys.readouterr().err
