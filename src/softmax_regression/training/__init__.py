"""The model, its objective, three ways to get its gradient and three optimizers, and the training loop."""
