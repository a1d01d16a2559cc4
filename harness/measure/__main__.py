import sys

from sockspec.measure.cli import main

sys.exit(main())
