import sys

from jaxrobust.cli import main

sys.exit(main())
