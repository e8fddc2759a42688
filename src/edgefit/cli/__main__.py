import sys

from edgefit.cli.main import main

sys.exit(main())
