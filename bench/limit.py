"""At the limit, on 10⁶ × 100 float32 in 10 classes, side by side in one process: one evaluation of J and ∇J by
each implementation against the floor of the two products it needs and against one read of X; lbfgs through
`SoftmaxRegression` against scikit-learn's `LogisticRegression` at its defaults on the same float32 array; and
what torch.compile and bfloat16 would give."""

from __future__ import annotations

import os
import time
from functools import partial

from common import CLASSES, FEATURES, L2, fastest, objective_in_float64, sklearn_at_defaults, synthetic

N = 1_000_000
TARGET = 1e-5  # relative distance to scikit-learn's objective that counts as reaching it
EVALUATION_TARGET, BINDINGS_TARGET, LBFGS_TARGET = 1.3, 1.3, 0.5  # manual/floor, autograd and nn/manual, ours/sklearn
FORWARD = ("X @ W", "F.linear(X, Wᵀ)", "torch.addmm(b, X, W)")
BACKWARD = ("Gᵀ @ X", "(Xᵀ @ G)ᵀ")


def textbook(X, y, W, b, l2):
    """The evaluation in one piece: addmm, softmax, a one-hot matrix, Xᵀ(P − Y)."""
    import torch
    import torch.nn.functional as F

    L = torch.addmm(b, X, W)
    loss = (torch.logsumexp(L, dim=1) - L.gather(1, y[:, None]).squeeze(1)).mean() + l2 * (W * W).sum()
    G = (torch.softmax(L, dim=1) - F.one_hot(y, W.shape[1]).to(X.dtype)) / len(y)
    return loss, X.T @ G + 2 * l2 * W, G.sum(dim=0)


def evaluations(X, y, repeats: int = 7) -> dict:
    """The products and each implementation's evaluation, timed in the same interleaved rounds."""
    import torch
    import torch.nn.functional as F

    from softmax_regression.training.gradients import IMPLEMENTATIONS
    from softmax_regression.training.model import initial_weights

    W0, b0 = initial_weights(FEATURES, CLASSES, 0, X.dtype)
    Wt = W0.T.contiguous()
    G = torch.softmax(X[:, :CLASSES], dim=1)  # an (n, k) gradient of the logits, as the backward product meets it
    implementations = {name: IMPLEMENTATIONS[name](X, y, W0, b0, L2) for name in sorted(IMPLEMENTATIONS)}
    functions = {"X.sum()": lambda: X.sum(), "X @ W": lambda: X @ W0, "F.linear(X, Wᵀ)": lambda: F.linear(X, Wt),
                 "torch.addmm(b, X, W)": lambda: torch.addmm(b0, X, W0), "Gᵀ @ X": lambda: G.T @ X,
                 "(Xᵀ @ G)ᵀ": lambda: (X.T @ G).T.contiguous(), "textbook": lambda: textbook(X, y, W0, b0, L2),
                 **{name: impl.loss_and_grad for name, impl in implementations.items()}}
    seconds = fastest(functions, repeats)
    forward, backward = min(FORWARD, key=seconds.get), min(BACKWARD, key=seconds.get)
    return {"seconds": seconds, "repeats": repeats, "forward": forward, "backward": backward,
            "floor_s": seconds[forward] + seconds[backward], "read_s": seconds["X.sum()"]}


def ours(impl: str, iterations: int):
    from softmax_regression import SoftmaxRegression

    return SoftmaxRegression(impl=impl, optimizer="lbfgs", iterations=iterations, l2=L2, standardize=False,
                             eval_every=0, tol=0.0, dtype="float32")


def lbfgs(X, y, repeats: int = 5) -> dict:
    """scikit-learn at its defaults on the float32 array, then each implementation's lbfgs through
    `SoftmaxRegression`, stopped at the first iteration whose J (in float64) is within TARGET of
    scikit-learn's: the fits timed in interleaved rounds, the fastest of each kept."""
    from softmax_regression.config import TrainParams
    from softmax_regression.training.model import initial_weights
    from softmax_regression.training.optimizers import fit

    Xn, yn = X.numpy(), y.numpy()
    J = partial(objective_in_float64, X.double(), y)  # J in float64 at scikit-learn-oriented coefficients

    ours("manual", 2).fit(Xn[:1000], yn[:1000])  # the first fits of a process import what they need
    sklearn_at_defaults(Xn[:1000], yn[:1000])
    reference = sklearn_at_defaults(Xn, yn)
    target = J(reference.coef_, reference.intercept_)
    rows = {"sklearn": {"iterations": int(reference.n_iter_[0]), "objective": target}}
    for impl in ("manual", "autograd", "nn"):
        curve = ours(impl, 200).fit(Xn, yn).loss_curve_
        t = next((i for i, loss in enumerate(curve) if loss <= target * (1 + TARGET)), len(curve) - 1)
        model = ours(impl, max(t, 1)).fit(Xn, yn)
        while J(model.coef_, model.intercept_) > target * (1 + TARGET) and t < len(curve):  # float32's J was low
            t += 1
            model = ours(impl, t).fit(Xn, yn)
        W0, b0 = initial_weights(FEATURES, CLASSES, 0, X.dtype)
        counted = fit(X, y, W0, b0, TrainParams(impl=impl, optimizer="lbfgs", iterations=t, lr=1, l2=L2, tol=0, seed=0))
        rows[impl] = {"iterations": t, "objective": J(model.coef_, model.intercept_),
                      "evaluations": counted.evaluations}
    seconds = fastest({"sklearn": lambda: sklearn_at_defaults(Xn, yn),
                       **{impl: (lambda impl=impl: ours(impl, rows[impl]["iterations"]).fit(Xn, yn))
                          for impl in ("manual", "autograd", "nn")}}, repeats)
    for name, row in rows.items():
        row["seconds"] = seconds[name]
        row["relative_gap"] = row["objective"] / target - 1
    return {"rows": rows, "repeats": repeats}


def compiled(X, y) -> dict:
    """torch.compile of one block of manual's evaluation (logits, log-sum-exp, softmax gradient, both products),
    from an empty cache as on a user's first fit: its compile time, and an evaluation's time once compiled,
    in the same rounds as manual's."""
    import tempfile

    import torch
    import torch.nn.functional as F

    from softmax_regression.training.gradients import Manual
    from softmax_regression.training.model import EVALUATION_BLOCK as BLOCK
    from softmax_regression.training.model import initial_weights

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")  # cold, whatever ran before
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # no pool of compiling processes left behind
    W0, b0 = initial_weights(FEATURES, CLASSES, 0, X.dtype)
    Wt, manual = W0.T.contiguous(), Manual(X, y, W0, b0, L2)

    def block(Xb, yb, Wt, b):
        L = F.linear(Xb, Wt, b)
        G = torch.softmax(L, dim=1) - F.one_hot(yb, Wt.shape[0]).to(Xb.dtype)
        return (torch.logsumexp(L, dim=1) - L.gather(1, yb[:, None]).squeeze(1)).sum(), G.T @ Xb, G.sum(dim=0)

    step = torch.compile(block, dynamic=False)

    def evaluation():
        parts = [step(Xb, yb, Wt, b0) for Xb, yb in zip(X.split(BLOCK), y.split(BLOCK), strict=True)]
        return [sum(p[i] for p in parts) for i in range(3)]

    start = time.perf_counter()
    try:
        evaluation()
    except Exception as e:  # noqa: BLE001 - no compiler on this machine is a finding, not a failure
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    compile_s = time.perf_counter() - start
    seconds = fastest({"compiled": evaluation, "manual": manual.loss_and_grad}, 5)
    return {"compile_s": compile_s, "evaluation_s": seconds["compiled"], "manual_s": seconds["manual"]}


def bfloat16(X, y) -> dict:
    """The products in bfloat16 (oneDNN) against float32, and J in bfloat16 against J in float64."""
    import torch
    import torch.nn.functional as F

    from softmax_regression.training.model import initial_weights, objective

    W0, b0 = initial_weights(FEATURES, CLASSES, 0, torch.float64)
    Wt, Xh = W0.T.contiguous(), X.bfloat16()
    G = torch.softmax(X[:, :CLASSES], dim=1)
    Gh = G.bfloat16()
    seconds = fastest({"float32 forward": lambda: F.linear(X, Wt.float()), "float32 backward": lambda: G.T @ X,
                       "bfloat16 forward": lambda: F.linear(Xh, Wt.bfloat16()),
                       "bfloat16 backward": lambda: Gh.T @ Xh}, 5)
    exact = objective(X.double(), y, Wt, b0, L2).item()
    rounded = objective(Xh, y, Wt.bfloat16(), b0.bfloat16(), L2).item()
    return {"seconds": seconds, "relative_error": abs(rounded - exact) / exact}


def run() -> dict:
    import torch

    from softmax_regression.training.loop import deterministic

    X, y = synthetic(N)
    with deterministic():  # as the trainers run
        evaluation = evaluations(X, y)
        race = lbfgs(X, y)
        compile_ = compiled(X, y)
    with torch.no_grad():
        half = bfloat16(X, y)
    return {"n": N, "features": FEATURES, "classes": CLASSES, "l2": L2, "target_relative": TARGET,
            "evaluation": evaluation, "lbfgs": race, "bfloat16": half, "compile": compile_}


def verdict(ratio: float, target: float) -> str:
    return f"≤ {target}×: {'met' if ratio <= target else '**not met**'}"


def markdown(r: dict) -> str:
    e, s, race = r["evaluation"], r["evaluation"]["seconds"], r["lbfgs"]["rows"]
    floor, manual, sk = e["floor_s"], s["manual"], race["sklearn"]
    targets = {"manual": verdict(manual / floor, EVALUATION_TARGET), "textbook": "",
               **{name: verdict(s[name] / manual, BINDINGS_TARGET) for name in ("autograd", "nn")}}
    half, comp = r["bfloat16"], r["compile"]
    if "error" in comp:
        compiling = f"torch.compile does not run here ({comp['error']})."
    else:
        saved = comp["manual_s"] - comp["evaluation_s"]
        compiling = (f"**torch.compile** of a block of manual's evaluation takes {comp['compile_s']:.1f} s to compile "
                     f"from an empty cache, then {1000 * comp['evaluation_s']:.0f} ms an evaluation against manual's "
                     f"{1000 * comp['manual_s']:.0f} ms in the same rounds: " +
                     ("no gain to pay for it" if saved <= 0 else
                      f"{1000 * saved:.0f} ms saved an evaluation, {comp['compile_s'] / saved:.0f} evaluations to pay "
                      "for the compile") + ". The trainers do not use it.")
    return "\n".join([
        "## At the limit: one evaluation, and lbfgs against scikit-learn",
        "",
        f"{r['n']:,} rows × {r['features']} float32 features in {r['classes']} overlapping classes, l2 = {r['l2']:g}, "
        f"in one process; times are the fastest of interleaved rounds ({e['repeats']} here). An evaluation of J and ∇J "
        "needs a forward product (the logits, n × k) and a backward one (the gradient, k × d): the floor is the "
        f"fastest of each, the memory limit one read of X (`X.sum()`, {1000 * e['read_s']:.1f} ms).",
        "",
        "| product | ms |",
        "| --- | ---: |",
        *(f"| {name}{' (the floor)' * (name in (e['forward'], e['backward']))} | {1000 * s[name]:.1f} |"
          for name in (*FORWARD, *BACKWARD)),
        f"| **floor**: forward + backward | **{1000 * floor:.1f}** |",
        "",
        "| evaluation | ms | / floor | / one read of X | / manual | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        *(f"| {name} | {1000 * s[name]:.1f} | {s[name] / floor:.2f}× | {s[name] / e['read_s']:.1f}× | "
          f"{s[name] / manual:.2f}× | {targets[name]} |" for name in ("manual", "autograd", "nn", "textbook")),
        "",
        "The implementations work a block of 16,384 rows at a time, so that the block is still in cache for the "
        "backward product; `textbook` is the evaluation in one piece (addmm, softmax, a one-hot matrix, Xᵀ(P − Y)).",
        "",
        "lbfgs through `SoftmaxRegression(optimizer=\"lbfgs\", standardize=False)`, against "
        "`LogisticRegression(C=1/(2·l2·n))` at its defaults (lbfgs, tol 1e-4) on the same float32 array, checking "
        f"of the inputs included for both; each of ours stops at the first iteration whose J is within "
        f"{r['target_relative']:g} of scikit-learn's (J in float64 for both). Fastest of "
        f"{r['lbfgs']['repeats']} interleaved rounds.",
        "",
        "| solver | s | / scikit-learn | iterations | evaluations / iteration | J (relative gap) | target |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
        f"| scikit-learn | {sk['seconds']:.2f} | 1 | {sk['iterations']} | | {sk['objective']:.8f} | |",
        *(f"| {impl} + lbfgs | {row['seconds']:.2f} | {row['seconds'] / sk['seconds']:.2f}× | {row['iterations']} | "
          f"{row['evaluations'] / row['iterations']:.2f} | {row['objective']:.8f} ({row['relative_gap']:+.1e}) | "
          f"{verdict(row['seconds'] / sk['seconds'], LBFGS_TARGET)} |"
          for impl, row in race.items() if impl != "sklearn"),
        "",
        f"**bfloat16** products take {1000 * half['seconds']['bfloat16 forward']:.0f} ms forward and "
        f"{1000 * half['seconds']['bfloat16 backward']:.0f} ms backward, against "
        f"{1000 * half['seconds']['float32 forward']:.0f} and {1000 * half['seconds']['float32 backward']:.0f} ms in "
        f"float32, but J computed in bfloat16 is {half['relative_error']:.1e} (relative) from J in float64 at the same "
        "weights: no optimum within 1e-5 can be found in it. The trainers do not use it.",
        "",
        compiling,
    ])
