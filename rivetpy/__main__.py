"""``python -m rivetpy``: the ``rivetpy`` command line."""

import sys

from rivetpy.cli import main

sys.exit(main())
