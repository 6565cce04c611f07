"""The pipeline against a real MLflow tracking server (`MLFLOW_TRACKING_URI`): runs, metric histories and
artifacts go through the server, nothing to the local store."""

from __future__ import annotations

import json
import urllib.request

from conftest import copy_built, free_port, run, serve, tool_env


def rest(uri: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/{path}", method="POST" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_pipeline_against_a_real_tracking_server(built, tmp_path):
    repo = copy_built(built, tmp_path / "repo", store=False)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = serve(["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                    "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                    "--artifacts-destination", str(tmp_path / "server-artifacts")], f"{uri}/health",
                   tool_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))  # no GenAI job runner: 8 processes fewer
    try:
        result = run(["dvc", "repro", "-f", "--downstream", "train"], repo, env=tool_env(MLFLOW_TRACKING_URI=uri))
        assert [line for line in result.stdout.splitlines() if line.startswith("Running stage")] == [
            "Running stage 'train':", "Running stage 'evaluate':"]
        assert not (repo / "mlflow.db").exists(), "nothing goes to the local store when a server is set"
        run_id = json.loads((repo / "models/mlflow_run.json").read_text())["run_id"]
        found = rest(uri, f"runs/get?run_id={run_id}")["run"]
        assert found["info"]["status"] == "FINISHED"
        metrics = {m["key"]: m["value"] for m in found["data"]["metrics"]}
        assert metrics["test_accuracy"] >= 0.9
        history = rest(uri, f"metrics/get-history?run_id={run_id}&metric_key=train_loss&max_results=1000")
        assert sorted(m["step"] for m in history["metrics"]) == list(range(250))
        files = rest(uri, f"artifacts/list?run_id={run_id}&path=weights")["files"]
        assert {f["path"] for f in files} >= {"weights/model.safetensors", "weights/coefficients.csv"}
        assert (tmp_path / "server-artifacts").is_dir(), "artifacts went through the server to its destination"
    finally:
        server.terminate()
        server.wait(timeout=30)
