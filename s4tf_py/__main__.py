"""``python -m s4tf_py``: the ``s4tf`` command (see :mod:`s4tf_py.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
