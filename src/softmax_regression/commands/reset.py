"""Back to the last commit's params and outputs, after a failed or unwanted experiment: `make reset`.

    make reset                                     # = python -m softmax_regression.commands.reset

`dvc exp run -S …` writes its settings into params.yaml and leaves them there when it fails, and a failed stage
has removed its outputs. This puts params.yaml, dvc.lock and every output of dvc.yaml's stages back as the
last commit has them: the files git tracks from git, the others (the data and the model) from DVC's cache.
It touches nothing else, neither the code nor any other file; `dvc status` is then clean.
"""

from __future__ import annotations

from softmax_regression import paths
from softmax_regression.commands.console import parser
from softmax_regression.pipeline.repo import dvc, git, stage_outputs
from softmax_regression.process import run_main


def reset() -> tuple[list[str], str]:
    """Restore; returns the files git restored and the commit."""
    committed = set(git("ls-tree", "-r", "--name-only", "HEAD").stdout.splitlines())
    files = [name for name in [paths.PARAMS, "dvc.lock", *stage_outputs()] if name in committed]
    git("checkout", "HEAD", "--", *files)
    dvc("checkout", "--force", quiet=True)  # the outputs DVC caches, as the restored dvc.lock records them
    return files, git("rev-parse", "--short", "HEAD").stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser("reset", __doc__).parse_args(argv)
    files, commit = reset()
    print(f"reset: {paths.PARAMS}, dvc.lock and every output of the pipeline are commit {commit}'s "
          f"({len(files)} files from git, the rest from DVC's cache); nothing else was touched")


if __name__ == "__main__":
    run_main(main)
