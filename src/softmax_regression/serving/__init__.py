"""The MLflow model: a fitted model applied to a table of named columns, logged as code."""
