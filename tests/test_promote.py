"""From runs to a champion, with the real tools in a copy of the repository: `make promote` after `make run`
and after a better `dvc exp run`, the MLflow Model Registry read back, runs on other validation data refused,
`split.val_size: 0` through the whole pipeline, and the champion served over HTTP. (That a worse run leaves the
champion is `decide`'s, tested first.)

The tests run in file order, each building on the last, as a user would.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from softmax_regression.commands.predict import predict_csv
from softmax_regression.commands.promote import Decision, Entry, best, decide

from conftest import (
    IRIS,
    copy_built,
    ctrl_c_on_make,
    free_port,
    interrupted_at,
    run,
    run_id_of,
    serve,
    store,
    tool_env,
)

NAME = "softmax-regression"  # tracking.registered_model in params.yaml


def entry(run_id: str, value: float, start: int, digest: str = "v1") -> Entry:
    return Entry(run_id, run_id, start, digest, {"val_log_loss": value, "val_accuracy": 1 - value})


def test_the_best_is_the_lowest_loss_or_highest_score_and_ties_go_to_the_earliest():
    entries = [entry("b", 0.3, 2), entry("a", 0.3, 1), entry("c", 0.5, 0)]
    assert best(entries, "val_log_loss").run_id == "a"
    assert best(entries, "val_accuracy").run_id == "a"
    assert best([entry("c", 0.5, 0)], "val_macro_f1") is None


def test_the_champion_moves_only_to_a_strictly_better_run_on_the_same_validation_data():
    champion = entry("old", 0.3, 0)
    assert decide(entry("new", 0.3, 1), None, "val_log_loss").promote
    assert decide(champion, champion, "val_log_loss") == Decision(False, "the candidate is the champion already")
    assert decide(entry("new", 0.29, 1), champion, "val_log_loss").promote
    tie = decide(entry("new", 0.3, 1), champion, "val_log_loss")
    assert not tie.promote and "not strictly better" in tie.reason
    assert not decide(entry("new", 0.31, 1), champion, "val_log_loss").promote
    other = decide(entry("new", 0.1, 1, digest="v2"), champion, "val_log_loss")
    assert other.refused and not other.promote and "other validation data" in other.reason
    forced = decide(entry("new", 0.9, 1, digest="v2"), champion, "val_log_loss", force=True)
    assert forced.promote and not forced.refused


# With the real tools, in one copy of the repository.

@pytest.fixture(scope="module")
def repo(built, tmp_path_factory) -> Path:
    return copy_built(built, tmp_path_factory.mktemp("promote") / "repo")


def lock_md5(repo: Path, path: str) -> str:
    """The md5 DVC recorded for an output in the workspace's dvc.lock: an independent hash of the file."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
                if out["path"] == path)


def champion(repo: Path):
    return store(repo).get_model_version_by_alias(NAME, "champion")


def make_promote(repo: Path, *args: str, check: bool = True):
    """`make promote ARGS=…`, as the Makefile runs it."""
    return run([sys.executable, "-m", "softmax_regression.commands.promote", *args], repo, check=check)


def exp_run(repo: Path, *settings: str) -> dict[str, float]:
    """`dvc exp run -S …`; returns the experiment's metrics/eval.json."""
    cmd = ["dvc", "exp", "run"]
    for setting in settings:
        cmd += ["-S", setting]
    run(cmd, repo)
    return json.loads((repo / "metrics/eval.json").read_text())


SEEN: dict[str, tuple[str, float]] = {}  # train.l2: (run id, val_log_loss), as DVC's outputs said after each run


def seen(repo: Path, l2: str) -> None:
    run_id = run_id_of(repo)
    SEEN[l2] = run_id, json.loads((repo / "metrics/eval.json").read_text())["val_log_loss"]


def test_serve_without_a_champion_fails_with_one_line(repo):
    result = run([sys.executable, "-m", "softmax_regression.commands.serve", "--port", str(free_port())], repo, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        (f"error: no champion among the registered versions of {NAME!r} in sqlite:///{repo / 'mlflow.db'}: run "
         f"`make promote` first")]


def test_the_first_promote_registers_the_run_with_its_lineage(repo):
    seen(repo, "0.01")
    result = make_promote(repo)
    assert "decision: champion -> version 1 (there is no champion yet)" in result.stdout
    version = champion(repo)
    run_id = run_id_of(repo)
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert str(version.version) == "1" and version.run_id == run_id
    tags = version.tags
    assert tags["mlflow_run_id"] == run_id and tags["val_data_md5"] == lock_md5(repo, "data/split/val.parquet")
    assert tags["git_commit"] == run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    lock = (repo / "dvc.lock").read_text()
    assert tags["data_md5"] in lock and len(tags["data_md5"]) == 32, "the raw CSV's md5, as DVC recorded it"
    for key in ("val_log_loss", "val_accuracy", "val_macro_f1", "test_log_loss", "test_accuracy", "test_macro_f1"):
        assert float(tags[key]) == evaluation[key], key
    again = make_promote(repo)
    assert "decision: the champion stays (the candidate is the champion already)" in again.stdout
    assert len(store(repo).search_model_versions(f"name = '{NAME}'")) == 1, "registered once"


def test_an_interrupt_while_it_registers_lets_the_registration_finish_and_moves_nothing(repo):
    """SIGTERM in the middle of MLflow's insert of a model version: the registry call ends first (no locked
    store), then promote stops with one line, before the alias moves."""
    exp_run(repo, "train.l2=0.001")
    seen(repo, "0.001")
    code = interrupted_at(["INSERT INTO model_versions"], ["-m", "softmax_regression.commands.promote"])
    result = run([sys.executable, "-c", code], repo, env=tool_env(), check=False)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "error: interrupted; outputs written so far are complete, the rest untouched"
    versions = store(repo).search_model_versions(f"name = '{NAME}'")
    assert sorted(v.run_id for v in versions) == sorted([SEEN["0.01"][0], SEEN["0.001"][0]]), "the insert finished"
    assert str(champion(repo).version) == "1", "the alias did not move"


def test_a_better_run_moves_it(repo):
    better = json.loads((repo / "metrics/eval.json").read_text())
    result = make_promote(repo)
    assert "decision: champion -> version 2 (val_log_loss" in result.stdout and "strictly better" in result.stdout
    assert len(store(repo).search_model_versions(f"name = '{NAME}'")) == 2, "registered once, though asked twice"
    assert sorted(SEEN) == ["0.001", "0.01"] and len({run_id for run_id, _ in SEEN.values()}) == 2
    best_l2 = min(SEEN, key=lambda l2: SEEN[l2][1])
    assert champion(repo).run_id == SEEN[best_l2][0] and best_l2 == "0.001"
    assert float(champion(repo).tags["val_log_loss"]) == better["val_log_loss"]
    params = store(repo).get_run(champion(repo).run_id).data.params
    assert params["train.l2"] == "0.001"


def test_the_champion_is_served_and_answers_as_make_predict(repo, tmp_path):
    version = champion(repo)
    model = store(repo).download_artifacts(version.run_id, "weights/model.safetensors", str(tmp_path))
    rows = pd.read_csv(IRIS).sample(n=9, random_state=5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    predict_csv(model, str(tmp_path / "rows.csv"), str(tmp_path / "expected.csv"))  # `make predict`'s, in-process
    port = free_port()
    server = serve([sys.executable, "-m", "softmax_regression.commands.serve", "--port", str(port)],
                   f"http://127.0.0.1:{port}/ping", tool_env(), cwd=repo)
    try:
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            got = pd.DataFrame(json.loads(response.read())["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    pd.testing.assert_frame_equal(got, pd.read_csv(tmp_path / "expected.csv"), check_exact=True)


def test_ctrl_c_on_make_serve_ends_with_one_line(repo, tmp_path):
    port = free_port()
    after = ctrl_c_on_make(repo, tmp_path, ["-m", "softmax_regression.commands.serve", "--port", str(port)],
                           f"http://127.0.0.1:{port}/ping")
    assert after == ["serve: stopped", "exit=0"], after


def test_runs_on_other_validation_data_are_refused_unless_forced(repo):
    before = champion(repo)
    exp_run(repo, "train.l2=0.001", "split.val_size=0.3")  # other validation rows (and fewer to train on)
    refused = make_promote(repo, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: refused: the champion (version {before.version}) was evaluated on other "
                           f"validation data"), line
    assert "candidate" in refused.stdout and "champion" in refused.stdout, "the table is printed"
    assert "decision" not in refused.stdout, "the refusal is said once"
    assert str(champion(repo).version) == str(before.version)
    assert len(store(repo).search_model_versions(f"name = '{NAME}'")) == 2, "nothing registered"

    forced = make_promote(repo, "--force")
    assert "decision: champion -> version 3 (--force" in forced.stdout
    assert champion(repo).tags["val_data_md5"] == lock_md5(repo, "data/split/val.parquet")


def test_no_validation_rows_run_through_and_promote_refuses_in_one_line(repo):
    evaluation = exp_run(repo, "split.val_size=0")
    assert sorted(evaluation) == ["test_accuracy", "test_log_loss", "test_macro_f1"]
    assert evaluation["test_accuracy"] >= 0.9
    assert len(pd.read_parquet(repo / "data/split/val.parquet")) == 0
    curves = (repo / "plots/log_loss.csv").read_text().splitlines()
    assert curves[0] == "iteration,train_log_loss,val_log_loss" and curves[1].endswith(",")
    run_id = run_id_of(repo)
    logged = store(repo).get_run(run_id)
    assert logged.info.status == "FINISHED" and "val_log_loss" not in logged.data.metrics
    assert [i.tags[0].value for i in logged.inputs.dataset_inputs] == ["training"]
    run(["dvc", "plots", "show", "--json"], repo)  # the plots still render

    before = champion(repo).version
    result = make_promote(repo, check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        ("error: split.val_size is 0: there are no validation rows to choose a run on; set split.val_size (0.2 is "
         "the default) and run `dvc repro`")]
    assert str(champion(repo).version) == str(before)
