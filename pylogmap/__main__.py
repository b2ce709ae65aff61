"""`python -m pylogmap` is the same as the `pylogmap` command."""

from pylogmap.cli import main

raise SystemExit(main())
