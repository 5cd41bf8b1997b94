"""`python -m gankit ...` (also what `torchrun -m gankit train ...` runs)."""
from gankit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
