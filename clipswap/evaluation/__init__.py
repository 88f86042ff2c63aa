"""Evaluation of face swaps with the metrics of the paper's Tables I-III.

pairs          the pairs file (source, target, optional output and label)
protocols      ffpp (frames from videos) and sample (random image pairs): write a pairs file
dlib_models    locating dlib and the model files of face-recognition-models (the `eval` extra)
landmarks      dlib's 68 landmarks in the detector's box (clipswap.registry.detectors.EVALUATION_DETECTOR, YuNet)
identity_models  SFace, dlib ResNet or a user ArcFace/CosFace .h5, and the choice of one that differs from the
               generator's training encoder
identity       ID similarity and top-1 ID retrieval (cosines from clipswap.face.similarity)
pose           yaw/pitch/roll from solvePnP on a generic 3D head; pose error
expression     landmark distance in the target's aligned 256 crop
image_quality  SSIM and PSNR (scikit-image)
fid            Frechet Inception Distance with a user-supplied InceptionV3 weights file
swapping       the swaps of `clipswap evaluate --model`: one source identity per group of pairs, timed per face
face_folders   folder-per-identity photo collections (LFW layout) turned into aligned crops
verification   genuine/impostor cosine scores and their ROC AUC (benchmarks/sface_auc.py)
report         metrics.json / metrics.md beside the paper's Tables I-III
runner         run_evaluation: produce missing swaps, analyse, aggregate, report
job            the `clipswap evaluate` job: pairs, identity model, swaps of a SwapModel, metrics and video stability

Submodules are imported explicitly (e.g. `from clipswap.evaluation.runner import run_evaluation`) so that importing
the package loads neither OpenCV's models nor dlib.
"""
