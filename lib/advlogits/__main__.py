"""``python -m advlogits``: the command line (`advlogits.cli`)."""

from .cli import main

raise SystemExit(main())
