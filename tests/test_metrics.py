"""Our evaluation metrics against scikit-learn's, on predictions with every kind of mistake."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from softmax_regression.files import write_csv
from softmax_regression.training.metrics import classification_report, confusion_rows


@pytest.fixture
def predictions():
    g = torch.Generator().manual_seed(0)
    P = torch.softmax(torch.randn(200, 4, generator=g, dtype=torch.float64) * 2, dim=1)
    y = torch.randint(0, 4, (200,), generator=g)
    return P, y


def test_report_matches_scikit_learn(predictions):
    P, y = predictions
    classes = ["a", "b", "c", "d"]
    report = classification_report(P, y, classes)
    y_np, pred = y.numpy(), P.argmax(1).numpy()
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y_np, pred), abs=1e-12)
    assert report["log_loss"] == pytest.approx(sk.log_loss(y_np, P.numpy(), labels=range(4)), abs=1e-12)
    assert report["macro_f1"] == pytest.approx(sk.f1_score(y_np, pred, average="macro"), abs=1e-12)
    precision, recall, f1, support = sk.precision_recall_fscore_support(y_np, pred, labels=range(4))
    for c, name in enumerate(classes):
        assert report["per_class"][name] == pytest.approx(
            {"precision": precision[c], "recall": recall[c], "f1": f1[c], "support": support[c]}, abs=1e-12)
    C = sk.confusion_matrix(y_np, pred, labels=range(4))
    assert [[report["confusion_matrix"][a][p] for p in classes] for a in classes] == C.tolist()


def test_a_class_never_predicted_has_zero_precision_not_nan():
    P = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.6, 0.4, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    report = classification_report(P, y, ["x", "y", "z"])
    assert report["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert np.isfinite(report["log_loss"]), "a zero probability of the true class is clipped, not -log 0"


def test_confusion_table_quotes_class_names(tmp_path):
    rows = confusion_rows(torch.tensor([0, 1]), torch.tensor([1, 1]), ["plain", "with, comma"])
    write_csv(tmp_path / "confusion.csv", ["actual", "predicted"], rows)
    text = (tmp_path / "confusion.csv").read_text()
    assert text == 'actual,predicted\nplain,"with, comma"\n"with, comma","with, comma"\n'
