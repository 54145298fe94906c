"""`python -m rig`: the rig's command line."""

import sys

from rig.cli import main
from rig.interrupts import block_until_exit

code = main()
block_until_exit()  # the run is written and its code decided: a late Ctrl-C or SIGTERM must not replace the code
sys.exit(code)
