"""`python -m harness` is the `sockspec` command, for a checkout without installing."""

import sys

from harness.cli import main

sys.exit(main())
