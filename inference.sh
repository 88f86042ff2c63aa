#!/bin/sh
# One example swap with the checkpoints in pretrained_ckpts/ (ClipSwap.h5, ArcFace-Res50.h5, RetinaFace-Res50.h5;
# see pretrained_ckpts/README.md). The project ships no photos: the example faces come from installed packages,
# scikit-image's astronaut.png (source) and matplotlib's grace_hopper.jpg (target). Override with
#   SOURCE=me.jpg TARGET=them.jpg OUTPUT=out.png sh inference.sh [more inference.py options]
set -e
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
SOURCE=${SOURCE:-$($PYTHON -c "import os, skimage; print(os.path.join(skimage.data.data_dir, 'astronaut.png'))")}
TARGET=${TARGET:-$($PYTHON -c "import os, matplotlib; print(os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'))")}
OUTPUT=${OUTPUT:-results/inference_example.png}
exec $PYTHON inference.py --source "$SOURCE" --target "$TARGET" --output "$OUTPUT" "$@"
