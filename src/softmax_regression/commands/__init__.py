"""The make targets: each a thin `main` over the layers."""
