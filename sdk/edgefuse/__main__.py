"""``python -m edgefuse``: the same as the ``edgefuse`` console script."""

from edgefuse.cli import main

raise SystemExit(main())
