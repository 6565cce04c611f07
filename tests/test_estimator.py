"""The trainer as a scikit-learn classifier (`SoftmaxRegression`): held to scikit-learn's own estimator checks,
used as any classifier is, one code path with the pipeline, and at LogisticRegression's optimum."""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from softmax_regression import SoftmaxRegression
from softmax_regression.commands.predict import predict_csv

from conftest import IRIS, ROOT

FEATURES = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]


def statuses(estimator) -> collections.Counter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    return collections.Counter("xfail" if r["expected_to_fail"] else r["status"] for r in results)


@pytest.fixture(scope="module")
def logistic_regression_skips() -> int:
    """What scikit-learn's own LogisticRegression skips in this environment (array-API checks without their
    optional packages)."""
    return statuses(LogisticRegression())["skipped"]


@pytest.mark.parametrize("impl", ["manual", "autograd", "nn"])
def test_scikit_learns_estimator_checks_pass(impl, logistic_regression_skips):
    counts = statuses(SoftmaxRegression(impl=impl))
    assert counts["passed"] >= 50 and counts["xfail"] == 0, counts
    assert counts["skipped"] <= logistic_regression_skips, counts


def test_the_parameters_are_params_yamls_train_section_with_its_defaults():
    train = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    assert SoftmaxRegression().get_params() == train
    assert SoftmaxRegression(**train).get_params() == train


@pytest.mark.parametrize(("params", "message"), [
    ({"lr": -1}, "SoftmaxRegression: lr must be a number > 0, got -1.0"),
    ({"impl": "jax"}, "SoftmaxRegression: impl must be one of ['autograd', 'manual', 'nn'], got 'jax'"),
    ({"world_size": 2}, "SoftmaxRegression: world_size must be 1, got 2: ranks are the pipeline's"),
])
def test_a_bad_parameter_is_a_value_error_naming_it(iris, params, message):
    X, y = iris
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        SoftmaxRegression(**params).fit(X.numpy(), y.numpy())


@pytest.fixture(scope="module")
def iris_frame() -> pd.DataFrame:
    return pd.read_csv(IRIS)


def test_labels_of_any_type_and_a_dataframes_feature_names(iris_frame):
    model = SoftmaxRegression().fit(iris_frame[FEATURES], iris_frame["Species"])
    assert list(model.classes_) == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert list(model.feature_names_in_) == FEATURES and model.n_features_in_ == 4 and model.n_iter_ == 250
    assert model.score(iris_frame[FEATURES], iris_frame["Species"]) > 0.9
    numbered = SoftmaxRegression().fit(iris_frame[FEATURES].to_numpy(), iris_frame["Species"].map(
        {"Iris-setosa": 10, "Iris-versicolor": 20, "Iris-virginica": 30}))
    assert list(numbered.classes_) == [10, 20, 30]
    np.testing.assert_array_equal(numbered.predict_proba(iris_frame[FEATURES].to_numpy()),
                                  model.predict_proba(iris_frame[FEATURES]))


def test_coef_and_intercept_act_on_the_raw_features(iris_frame):
    X = iris_frame[FEATURES].to_numpy()
    model = SoftmaxRegression(optimizer="lbfgs", tol=1e-6, dtype="float64").fit(X, iris_frame["Species"])
    assert model.coef_.shape == (3, 4) and model.intercept_.shape == (3,)
    np.testing.assert_allclose(model.decision_function(X), X @ model.coef_.T + model.intercept_, rtol=1e-10)
    logits = X @ model.coef_.T + model.intercept_
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(X), P / P.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.predict_log_proba(X), np.log(model.predict_proba(X)), rtol=1e-9)


def test_two_classes_give_scikit_learns_binary_shapes(iris_frame):
    two = iris_frame[iris_frame["Species"] != "Iris-setosa"]
    model = SoftmaxRegression().fit(two[FEATURES], two["Species"])
    X = two[FEATURES].to_numpy()
    assert model.coef_.shape == (1, 4) and model.intercept_.shape == (1,)
    decision = model.decision_function(two[FEATURES])
    assert decision.shape == (len(two),)
    np.testing.assert_allclose(decision, X @ model.coef_[0] + model.intercept_[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.predict(two[FEATURES]), model.classes_[(decision > 0).astype(int)])


def test_a_grid_search_over_impl_and_l2_and_a_pipeline_with_a_scaler(iris_frame):
    X, y = iris_frame[FEATURES], iris_frame["Species"]
    search = GridSearchCV(SoftmaxRegression(), {"impl": ["manual", "nn"], "l2": [0.001, 0.1]}, cv=3)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4 and search.best_params_["l2"] == 0.001 and search.best_score_ > 0.9
    pipeline = make_pipeline(StandardScaler(), SoftmaxRegression(standardize=False))
    assert cross_val_score(pipeline, X, y, cv=3).mean() > 0.9


def test_fitted_on_the_pipelines_rows_it_is_the_pipelines_model(built, tmp_path):
    """One code path: on the training rows a real `dvc repro` split, with params.yaml's `train:` section, its
    probabilities on the validation rows are those `make predict` gives with the pipeline's model."""
    params = yaml.safe_load((built / "params.yaml").read_text())["train"]
    train = pd.read_parquet(built / "data/split/train.parquet")
    val = pd.read_parquet(built / "data/split/val.parquet")
    model = SoftmaxRegression(**params).fit(train[FEATURES], train["Species"])
    val[FEATURES].to_csv(tmp_path / "val.csv", index=False)
    predict_csv(built / "models/model.safetensors", tmp_path / "val.csv", tmp_path / "predicted.csv")
    predicted = pd.read_csv(tmp_path / "predicted.csv")
    classes = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    np.testing.assert_allclose(model.predict_proba(val[FEATURES]), predicted[[f"p({c})" for c in classes]].to_numpy(),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(classes)[model.predict(val[FEATURES])], predicted["predicted"])


def made_data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=600, n_features=12, n_informative=8, n_classes=4, n_clusters_per_class=1,
                               random_state=0)
    return X * np.linspace(0.1, 50, 12), y  # features of very different scales


@pytest.mark.parametrize(("data", "standardize"), [("iris", False), ("iris", True), ("made", True)],
                         ids=["iris-raw", "iris-standardised", "made-standardised"])
@pytest.mark.parametrize("impl", ["manual", "autograd", "nn"])
def test_lbfgs_gives_logistic_regressions_probabilities(iris_frame, data, impl, standardize):
    """At C = 1 / (2·l2·n) the two minimise one objective; standardised, LogisticRegression's features are
    scaled as ours are (StandardScaler: the training rows' mean and standard deviation). In float64: in
    float32, lbfgs stops where J's rounding hides a step's gain, a few 1e-6 of J from the optimum, and the
    probabilities agree to about 1e-3."""
    X, y = (iris_frame[FEATURES].to_numpy(), iris_frame["Species"].to_numpy()) if data == "iris" else made_data()
    l2 = 0.01
    ours = SoftmaxRegression(impl=impl, optimizer="lbfgs", iterations=1000, tol=1e-6, l2=l2, standardize=standardize,
                             dtype="float64")
    theirs = LogisticRegression(C=1 / (2 * l2 * len(y)), tol=1e-10, max_iter=10_000)
    if standardize:
        theirs = make_pipeline(StandardScaler(), theirs)
    ours.fit(X, y), theirs.fit(X, y)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-4)
