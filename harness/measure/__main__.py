import sys

from harness.measure.cli import main

sys.exit(main())
