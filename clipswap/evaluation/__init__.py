"""Evaluation of face swaps with the paper's metrics (REFERENCE.md section 8).

pairs        the pairs file (source, target, optional output and label)
protocols    ffpp (frames from videos) and sample (random image pairs): write a pairs file
yunet        the one face detector of the evaluation (YuNet, OpenCV Zoo)
landmarks    dlib's 68 landmarks in the YuNet box
identity_models / identity   SFace, dlib ResNet or a user ArcFace/CosFace .h5; ID similarity and top-1 retrieval
pose         yaw/pitch/roll from solvePnP on a generic 3D head; pose error
expression   landmark distance in the target's aligned 256 crop
image_quality  SSIM and PSNR (scikit-image)
fid          Frechet Inception Distance with a user-supplied InceptionV3 weights file
report       metrics.json / metrics.md beside the paper's Tables I-III
runner       run_evaluation: produce missing swaps, analyse, aggregate, report

Submodules are imported explicitly (e.g. `from clipswap.evaluation.runner import run_evaluation`) so that importing
the package loads neither OpenCV's models nor dlib.
"""
