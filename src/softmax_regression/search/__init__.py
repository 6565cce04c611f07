"""`make tune`: a reproducible Optuna search over train.* params, its trials run on the train stage's own code."""
