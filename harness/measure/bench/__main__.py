import sys

from sockspec.measure.bench import main

sys.exit(main())
