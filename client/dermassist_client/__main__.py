"""``python -m dermassist_client``: the ``dermassist-client`` command."""
import sys

from .cli import main

sys.exit(main())
