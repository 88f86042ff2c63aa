"""Calibration of the evaluation identity models on LFW: genuine and impostor cosine means and the equal-error
threshold, which `clipswap evaluate` uses for its calibrated similarity and its verification rate
(clipswap.evaluation.identity_models.CALIBRATION).

    python benchmarks/identity_calibration.py [--identities 60] [--photos 8]

Per photo: YuNet, the central face, the identity model's own embed (SFace: OpenCV's alignCrop; dlib: its 5-point
shape). All unordered pairs among the chosen people: genuine = same person, impostor = different. Needs
../shared/data/lfw and the eval extra (dlib). About 2 minutes on the 2-core development machine.
Writes benchmarks/results/identity_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

from clipswap.atomic import write_text_atomic
from clipswap.evaluation.face_folders import central_detection, list_identities
from clipswap.evaluation.identity_models import load_identity_model
from clipswap.evaluation.verification import genuine_impostor_scores, roc_auc
from clipswap.face.yunet import YuNetDetector
from clipswap.media.images import read_image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def equal_error_threshold(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(threshold, equal error rate): the cosine where the false-reject and false-accept rates meet."""
    thresholds = np.quantile(np.concatenate([genuine, impostor]), np.linspace(0, 1, 4001))
    false_reject = np.array([np.mean(genuine < t) for t in thresholds])
    false_accept = np.array([np.mean(impostor >= t) for t in thresholds])
    best = int(np.argmin(np.abs(false_reject - false_accept)))
    return float(thresholds[best]), float((false_reject[best] + false_accept[best]) / 2)


def calibrate(name: str, photos: list[tuple[Path, str]]) -> dict:
    model = load_identity_model(name)
    detector = YuNetDetector()
    embeddings, labels = [], []
    for path, label in photos:
        image = read_image(path)
        face = central_detection(detector.detect(image), image.shape)
        if face is None:
            continue
        embeddings.append(model.embed(image, face))
        labels.append(label)
    genuine, impostor = genuine_impostor_scores(np.stack(embeddings), labels)
    threshold, eer = equal_error_threshold(genuine, impostor)
    return {"model": model.name, "faces": len(labels), "genuine_pairs": int(genuine.size),
            "impostor_pairs": int(impostor.size), "genuine_mean": float(genuine.mean()),
            "impostor_mean": float(impostor.mean()), "eer_threshold": threshold, "eer": eer,
            "auc": roc_auc(genuine, impostor)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=60)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "identity_calibration.json")
    args = parser.parse_args()
    people = list_identities(DATA / "lfw", min_photos=args.photos)
    chosen = sorted(people)[: args.identities]
    photos = [(path, person) for person in chosen for path in people[person][: args.photos]]
    report = {"machine": platform.platform(), "identities": len(chosen), "photos_per_identity": args.photos,
              "models": {name: calibrate(name, photos) for name in ("sface", "dlib")}}
    print(f"{'model':<8} {'faces':>6} {'genuine mean':>13} {'impostor mean':>14} {'EER threshold':>14} {'EER':>6} "
          f"{'AUC':>7}")
    for name, row in report["models"].items():
        print(f"{name:<8} {row['faces']:>6} {row['genuine_mean']:>13.3f} {row['impostor_mean']:>14.3f} "
              f"{row['eer_threshold']:>14.3f} {row['eer']:>6.3f} {row['auc']:>7.4f}")
    write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
