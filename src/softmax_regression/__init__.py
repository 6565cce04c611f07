"""Multinomial logistic (softmax) regression in PyTorch, as a DVC pipeline tracked in MLflow."""

from typing import Any

__all__ = ["SoftmaxRegression"]


def __getattr__(name: str) -> Any:
    # The estimator imports torch and scikit-learn: only for whoever asks for it, not for every stage.
    if name == "SoftmaxRegression":
        from softmax_regression.estimator import SoftmaxRegression

        return SoftmaxRegression
    raise AttributeError(f"module 'softmax_regression' has no attribute {name!r}")
