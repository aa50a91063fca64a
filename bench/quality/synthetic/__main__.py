"""`python -m bench.quality.synthetic`: see bench/quality/synthetic/__init__.py."""

from bench.quality.synthetic.cli import main

if __name__ == "__main__":  # spawned workers import this module too; only the parent runs
    main()
