"""``python -m runtime.cli``: the ``shardsim`` command without its entry point script."""

import sys

from runtime.cli import main

sys.exit(main())
