"""`clipswap` with TensorFlow unimportable, as on a machine without it (tests of `clipswap train --backend jax`).

Usage: python tests/jax_cli.py train --backend jax ...
"""

from __future__ import annotations

import sys

from backend_probe import block_tensorflow

if __name__ == "__main__":
    block_tensorflow()
    from clipswap.cli import main

    sys.exit(main())
