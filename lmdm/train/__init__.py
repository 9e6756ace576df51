"""Training scripts: each module is a plain function plus a `python -m` entry point."""
