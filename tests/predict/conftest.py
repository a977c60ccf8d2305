"""The predict and serve tests share `run_dir` and `mnist_test` from tests/conftest.py."""
