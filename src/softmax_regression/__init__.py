"""Multinomial logistic (softmax) regression in PyTorch, as a DVC pipeline tracked in MLflow."""
