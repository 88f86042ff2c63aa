#!/bin/sh
# One example swap: with the published checkpoints when pretrained_ckpts/ holds them (ClipSwap.h5, ArcFace-Res50.h5,
# RetinaFace-Res50.h5, flat or in the release's clipswap/, arcface/, retinaface/ folders; see
# pretrained_ckpts/README.md), otherwise with the demo generator shipped in pretrained_ckpts/demo/ (SFace identity,
# YuNet detector: runs on a fresh clone, offline). It prints one line naming the models it used. The project ships
# no photos: the example faces come from installed packages, scikit-image's astronaut.png (source) and matplotlib's
# grace_hopper.jpg (target). Override with
#   SOURCE=me.jpg TARGET=them.jpg OUTPUT=out.png sh inference.sh [more inference.py options]
# Relative paths (SOURCE, TARGET, OUTPUT and paths among the options) are taken from the directory you run it in;
# the default OUTPUT is results/inference_example.png in this script's folder, whose folder is made only when the
# result is written. The script does not change directory: it finds inference.py beside itself, and clipswap finds
# pretrained_ckpts/ beside its checkout.
set -e
HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
PYTHON=${PYTHON:-python}
SOURCE=${SOURCE:-$($PYTHON -c "import os, skimage; print(os.path.join(skimage.data.data_dir, 'astronaut.png'))")}
TARGET=${TARGET:-$($PYTHON -c "import os, matplotlib; print(os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'))")}
OUTPUT=${OUTPUT:-$HERE/results/inference_example.png}
exec $PYTHON "$HERE/inference.py" --source "$SOURCE" --target "$TARGET" --output "$OUTPUT" "$@"
