"""params.yaml is checked before any work: each mistake names the key, what is allowed and what was given."""

from __future__ import annotations

import pytest
import yaml

from softmax_regression.config import IngestParams, SplitParams, TrainParams, flatten, read_params, section
from softmax_regression.errors import ParamError
from softmax_regression.tracking.lineage import changed_params

from conftest import ROOT

GOOD_TRAIN = {"impl": "nn", "iterations": 10, "lr": 0.1, "l2": 0.0, "seed": 1}


def test_the_repository_params_are_valid():
    params = read_params(ROOT / "params.yaml")
    assert section(params, "ingest", IngestParams).drop == ("Id",)
    assert section(params, "split", SplitParams).test_size == 0.2
    train = section(params, "train", TrainParams)
    assert (train.lr, train.l2, train.iterations) == (0.1, 0.01, 250)


@pytest.mark.parametrize("change,message", [
    ({"lr": 0}, r"train\.lr must be a number > 0, got 0\.0"),
    ({"lr": -1}, r"train\.lr must be a number > 0"),
    ({"lr": "fast"}, r"train\.lr must be a number, got 'fast'"),
    ({"iterations": 0}, r"train\.iterations must be an integer >= 1, got 0"),
    ({"iterations": 2.5}, r"train\.iterations must be an integer, got 2\.5"),
    ({"iterations": True}, r"train\.iterations must be an integer, got True"),
    ({"l2": -0.1}, r"train\.l2 must be a number >= 0, got -0\.1"),
    ({"dtype": "float16"}, r"train\.dtype must be one of \['float32', 'float64'\], got 'float16'"),
    ({"learning_rate": 0.1}, r"unknown key train\.learning_rate \(known keys: \[.*'lr'"),
])
def test_bad_train_params_are_named(change, message):
    with pytest.raises(ParamError, match=message):
        section({"train": GOOD_TRAIN | change}, "train", TrainParams)


def test_exponent_notation_that_yaml_reads_as_a_string_is_a_number():
    assert section({"train": GOOD_TRAIN | {"tol": "1e-05", "lr": "2E-1"}}, "train", TrainParams).tol == 1e-5


def test_missing_key_and_section_are_named():
    incomplete = {k: v for k, v in GOOD_TRAIN.items() if k != "seed"}
    with pytest.raises(ParamError, match=r"missing key train\.seed"):
        section({"train": incomplete}, "train", TrainParams)
    with pytest.raises(ParamError, match=r"section 'split' is missing"):
        section({}, "split", SplitParams)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.2])
def test_test_size_must_be_a_fraction(test_size):
    with pytest.raises(ParamError, match=r"split\.test_size must be a fraction in \(0, 1\)"):
        section({"split": {"test_size": test_size, "seed": 0}}, "split", SplitParams)


@pytest.mark.parametrize("val_size,message", [
    (-0.1, r"split\.val_size must be a fraction in \[0, 1\), got -0\.1"),
    (1, r"split\.val_size must be a fraction in \[0, 1\), got 1\.0"),
    (0.8, r"split\.val_size must be less than 1 - split\.test_size = 0\.8, to leave rows to train on, got 0\.8"),
])
def test_val_size_must_leave_rows_to_train_on(val_size, message):
    with pytest.raises(ParamError, match=message):
        section({"split": {"test_size": 0.2, "val_size": val_size, "seed": 0}}, "split", SplitParams)
    assert section({"split": {"test_size": 0.2, "val_size": 0, "seed": 0}}, "split", SplitParams).val_size == 0


def test_drop_accepts_a_single_name_or_none():
    base = {"path": "x.csv", "label": "y"}
    assert section({"ingest": base | {"drop": "Id"}}, "ingest", IngestParams).drop == ("Id",)
    assert section({"ingest": base | {"drop": None}}, "ingest", IngestParams).drop == ()
    with pytest.raises(ParamError, match=r"ingest\.drop must be columns other than the label .y., got \[.y.\]"):
        section({"ingest": base | {"drop": ["y"]}}, "ingest", IngestParams)


def test_params_file_problems(tmp_path):
    with pytest.raises(ParamError, match="file not found"):
        read_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        read_params(tmp_path / "params.yaml")


def test_flatten_gives_dotted_names():
    params = yaml.safe_load("train: {lr: 0.1, impl: nn}\nsplit: {seed: 1}")
    assert flatten(params) == {"train.lr": 0.1, "train.impl": "nn", "split.seed": 1}


def test_changed_params_compare_as_mlflow_logs_them():
    baseline = {"train.lr": 0.1, "train.iterations": 250, "ingest.drop": ["Id"], "train.tol": 0.0}
    assert changed_params({"train.lr": 0.1, "train.iterations": 250, "ingest.drop": ["Id"]}, baseline) == {}
    logged = {"train.lr": "0.1", "train.iterations": "500", "ingest.drop": "['Id']", "train.tol": "0"}  # from a run
    assert changed_params(logged, baseline) == {"train.iterations": "500"}, "tol 0 is tol 0.0"
    assert changed_params({"ingest.drop": "['Id', 'x']"}, baseline) == {"ingest.drop": "['Id', 'x']"}
    assert changed_params({"train.l2": 1e-05}, baseline) == {"train.l2": 1e-05}, "a key the baseline lacks"
    assert changed_params({"train.lr": 0.2}, None) == {}, "no baseline (git could not say): nothing to compare"
