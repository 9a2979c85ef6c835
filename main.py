"""Entry point: `python main.py` for the interactive planner, `python main.py --prompt "..."` for one plan."""

from orchestrator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
