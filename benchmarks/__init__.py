"""Speed measurements (pytest-benchmark); never part of `make test`."""
