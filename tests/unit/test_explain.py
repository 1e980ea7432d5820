"""explain.py: the vanishing-gradient figure, plain RNN vs LSTM, and its CLI subcommand."""

from __future__ import annotations

import csv
import math
import re

import pytest
import torch

from tsforecast.cli import main
from tsforecast.errors import ConfigError
from tsforecast.paths import Paths
from tsforecast.teaching.explain import gradient_curves, run_explain_gradients

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["steps_back", "rnn", "lstm", "lstm_default_init", "lstm_forget_bias_3"]
SEQ_LEN, HIDDEN = 60, 16  # small, and still ~10 orders of magnitude apart (worst of 20 seeds: 8.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    paths = Paths.from_root(tmp_path_factory.mktemp("repo"))
    result = run_explain_gradients(paths, seq_len=SEQ_LEN, hidden_size=HIDDEN, seed=0)
    return paths, result


def test_writes_a_png_figure(run):
    paths, result = run
    assert result["png"] == "plots/gradients.png"
    png = paths.root / result["png"]
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000


def test_writes_a_csv_with_one_row_per_step_back(run):
    paths, result = run
    assert result["csv"] == "plots/gradients.csv"
    with open(paths.root / result["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == COLUMNS
    assert [int(r["steps_back"]) for r in rows] == list(range(SEQ_LEN))
    assert all(float(rows[0][c]) == 1.0 for c in COLUMNS[1:]), "each curve is relative to steps_back=0"
    # the returned ratios are the CSV's last row (rounded to 3 significant digits)
    assert math.isclose(float(rows[-1]["rnn"]), result["rnn_ratio_first_to_last"], rel_tol=1e-2)
    assert math.isclose(float(rows[-1]["lstm"]), result["lstm_ratio_first_to_last"], rel_tol=1e-2)


def test_writes_nothing_else_into_plots(run):
    paths, _ = run
    assert sorted(p.name for p in paths.plots.iterdir()) == ["gradients.csv", "gradients.png"]


def test_rnn_gradient_vanishes_orders_of_magnitude_faster_than_the_lstm(run):
    _, result = run
    rnn, lstm = result["rnn_ratio_first_to_last"], result["lstm_ratio_first_to_last"]
    assert 0 < rnn < lstm * 1e-6, (rnn, lstm)
    assert result["lstm_default_init_ratio_first_to_last"] < lstm * 1e-3, "the forget bias is what helps"
    assert result["lstm_forget_bias_3_ratio_first_to_last"] > 1e-3, "a gate near 1 carries the gradient"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_gap_holds_for_other_seeds(seed):
    curves = gradient_curves(SEQ_LEN, HIDDEN, seed)
    assert curves["rnn"][-1] < curves["lstm"][-1] * 1e-6


def test_leaves_the_callers_rng_and_thread_count_alone():
    torch.manual_seed(123)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    gradient_curves(8, 4, seed=0)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads


def test_same_seed_same_curves():
    a, b = gradient_curves(10, 4, seed=5), gradient_curves(10, 4, seed=5)
    assert all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq_len": 1}, "seq_len=1 must be an integer >= 2"),
        ({"seq_len": 2.5}, "seq_len=2.5 must be an integer >= 2"),
        ({"hidden_size": 0}, "hidden_size=0 must be an integer >= 1"),
        ({"hidden_size": True}, "hidden_size=True must be an integer >= 1"),
        ({"seed": -1}, "seed=-1 must be an integer >= 0"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_value(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_explain_gradients(Paths.from_root(tmp_path), **kwargs)
    assert not (tmp_path / "plots").exists()


def test_cli_explain_gradients_writes_the_figure(tmp_path, capsys):
    code = main(["explain", "gradients", "--root", str(tmp_path), "--seq-len", "60", "--hidden-size", "16"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("explain gradients: png=plots/gradients.png, csv=plots/gradients.csv, ")
    assert "rnn_ratio_first_to_last=" in out and "lstm_ratio_first_to_last=" in out
    assert (tmp_path / "plots" / "gradients.png").read_bytes().startswith(PNG_MAGIC)


def test_cli_reports_a_bad_argument_in_one_line(tmp_path, capsys):
    code = main(["explain", "gradients", "--root", str(tmp_path), "--seq-len", "1"])
    assert code == 1
    assert capsys.readouterr().err == "error: seq_len=1 must be an integer >= 2\n"
