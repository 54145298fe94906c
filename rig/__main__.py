"""`python -m rig`: the rig's command line."""

import sys

from rig.cli import main

sys.exit(main())
