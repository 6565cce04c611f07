"""MLflow: where runs go, how a run is opened, filled and closed, where it came from, and the registry."""
