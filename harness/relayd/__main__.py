"""python -m harness.relayd -f relayd.conf: see harness/relayd/__init__.py."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
