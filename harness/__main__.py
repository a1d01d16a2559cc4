"""`python -m sockspec` is the `sockspec` command, for a checkout without installing."""

import sys

from sockspec.cli import main

sys.exit(main())
