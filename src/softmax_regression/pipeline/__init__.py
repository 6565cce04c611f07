"""The DVC side: git and DVC commands on the repository, experiments and their queue. No torch, no MLflow."""
