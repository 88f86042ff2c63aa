"""`clipswap` with what the GPU machine lacks unimportable (TensorFlow, imageio-ffmpeg, keras-hub, PyWavelets: see
backend_probe.GPU_MACHINE_LACKS), as there (tests of `clipswap train --backend jax`).

Usage: python tests/jax_cli.py train --backend jax ...
"""

from __future__ import annotations

import sys

from backend_probe import GPU_MACHINE_LACKS, block_modules

if __name__ == "__main__":
    block_modules(*GPU_MACHINE_LACKS)
    from clipswap.cli import main

    sys.exit(main())
