"""Write (or check) the golden output summaries of tests/models/test_networks.py: tests/golden/<case>.npz.

Each file holds, for one network or layer case with the harness's seeded weights (tests/harness.py seed_weights) on
its fixed inputs (fixed_inputs), a few-KB summary of every output (golden_summary: small outputs whole, else a
strided sample, 16 fixed random projections and the moments) and a fingerprint of the weights. test_golden_output
recomputes them and fails when the maths changed.

When to regenerate: only after a deliberate change of a network's maths (another epsilon, activation, layer order,
a new block) or of its weights' names and shapes, never to make a refactor pass: a refactor (tf.* -> keras.ops, a
new file layout) must leave every golden test green. Say in the commit which change moved which files.

How: generate from the code whose outputs are the reference, not from a working tree with unfinished edits. For
example, from a clean commit:

    git -C /work/main worktree add /tmp/golden_base <commit>
    cd /work/main && PYTHONPATH=/tmp/golden_base python tests/golden/make_golden.py            # all cases
    PYTHONPATH=/tmp/golden_base python tests/golden/make_golden.py --check                     # a second process
    git worktree remove /tmp/golden_base

`make_golden.py NAME ...` writes only those cases; `--check` writes nothing and compares with the stored files (the
weights and inputs are seeded from variable paths, so a second process must reproduce them; run it to confirm).
The script prints which clipswap it imported: check it is the one you meant. About a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
GOLDEN = Path(__file__).resolve().parent
# tests/: the harness and conftest; tests/models: the cases (test_networks.py)
sys.path[:0] = [str(GOLDEN.parent), str(GOLDEN.parent / "models")]

import numpy as np  # noqa: E402
from harness import assert_golden, golden_summary  # noqa: E402
from test_networks import LAYERS, NETWORKS, golden_outputs  # noqa: E402

import clipswap  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="cases to write (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the stored files, write nothing")
    args = parser.parse_args()
    names = args.names or [*NETWORKS, *LAYERS]
    unknown = sorted(set(names) - set(NETWORKS) - set(LAYERS))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {[*NETWORKS, *LAYERS]}")
    print(f"clipswap from {Path(clipswap.__file__).parent}")
    for name in names:
        outputs, fingerprint = golden_outputs(name)
        path = GOLDEN / f"{name}.npz"
        if args.check:
            assert_golden(outputs, path, fingerprint)
            print(f"{name}: matches {path.name}")
            continue
        summary = {**golden_summary(outputs), "weights/fingerprint": fingerprint}
        with open(path, "wb") as handle:
            np.savez(handle, **summary)
        print(f"{name}: wrote {path.name} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
