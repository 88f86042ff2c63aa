"""FaceSwapper: detect -> align -> identity -> generate -> blend, for one frame at a time (the release's inference.py).

Source branch (once per run): detect, take the best-scoring face, align to the 112 ArcFace template, encode the raw
identity vector (ArcFace or SFace, as the generator checkpoint says), and append the CLIP embedding of the source's
generator-size crop when the generator takes one.

Target branch (every frame): detect, select faces (--faces, --reference-face), align each to the S x S crop (the
ArcFace template scaled by S / 112), run ALL selected faces of the frame through the generator in one batch
(compiled once for the Keras backend with a [None, S, S, 3] signature, so on TensorFlow any face count reuses one
trace), map the output from [-1, 1] to
[0, 1], and composite each crop back through the inverse similarity with the blend mask.

What the generator reads is its conditioning's row (clipswap.models.conditioning). A "refine_landmark_swap" one
(the earlier demo model) reads, instead of each target crop, the classical landmark swap of the source's crop onto
it (clipswap.face.landmark_swap, dlib's 68 points; the source's crop and points are kept once per run), and is
pasted back over the region that swap replaced (its hull with the forehead, feathered by about a pixel), so
everything outside that region stays the frame's own. One with a source input reads the source's aligned crop
beside each target crop (kept once per run, like the identity vector); "target+warp" reads instead, beside each
target crop, the source's face warped onto that crop's 68 landmarks and pasted into it
(clipswap.face.landmark_swap.warp_paste), and is pasted back over that face region as a landmark-swap one is.

Colour order is RGB everywhere; frames are [H, W, 3] uint8.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import keras
import numpy as np

from clipswap.checkpoints.encoders import IDENTITY_SIZE, ClipEmbedder, IdentityEncoder
from clipswap.checkpoints.errors import CheckpointError
from clipswap.face.align import align_face, estimate_alignment, head_turn, transform_points, warp_face
from clipswap.face.detection import Detection, NoFaceError
from clipswap.face.similarity import cosine_matrix
from clipswap.inference.blend import BLEND_KINDS, composite, composite_poisson, landmark_mask, published_mask
from clipswap.inference.selection import DEFAULT_SIMILARITY, FaceSelection, matching_faces
from clipswap.models.compile import compile_predict
from clipswap.models.conditioning import IDENTITY, SOURCE, TARGET, LegacyFlags, get_conditioning
from clipswap.options import COLOR_CORRECTIONS, PRECISIONS

log = logging.getLogger(__name__)

#: Per-frame stages, timed for every target frame ("identity" only does work when matching a reference face).
STAGES = ("detect", "align", "identity", "generate", "blend")
#: The once-per-run stage: the source identity (and the reference face's), detection and alignment included.
SOURCE_STAGE = "source"
#: Smallest face (shorter box side, pixels) taken from a source, reference or --map image: the identity encoders read
#: 112 px crops, and a face under 32 px carries little identity (a 20 x 20 photo once gave dlib a degenerate box).
MIN_SOURCE_FACE = 32
#: Faces per generator call; more faces in one frame are split into several calls of the same trace.
MAX_BATCH = 16
#: mirror_source mirrors the source's crop for a target face when the product of their head turns (head_turn, in eye
#: distances) is below minus this: the two look to opposite sides, each by more than a few degrees of yaw. Nearly
#: frontal faces keep the source as it is, since mirroring them gains no pose.
MIRROR_TURN_PRODUCT = 0.0025


@dataclass
class StageTimer:
    """Wall-clock seconds per pipeline stage (STAGES, and SOURCE_STAGE for set_source/set_reference), summed over
    calls, the process's CPU seconds in each (`cpu_seconds`: every thread of the process, so a runtime's worker
    threads count; on a loaded machine wall time includes waiting for a core, CPU time does not), and the number of
    faces generated."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    faces: int = 0
    frames: int = 0

    @contextmanager
    def stage(self, name: str):
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.cpu_seconds[name] += time.process_time() - cpu_start

    def reset(self) -> None:
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.faces = 0
        self.frames = 0


def generator_in_precision(model: Callable, precision: str) -> Callable:
    """The generator to run: a clipswap Generator's inference form (clipswap.models.generator.inference_generator:
    the same function on a cheaper graph, weights converted; for bf16 under Keras' mixed_bfloat16 policy with the
    fused norm); any other model itself, in fp32.

    Raises:
        ValueError: an unknown precision, or bf16 asked of something that is not a clipswap Generator (only a
            Generator can be rebuilt in another precision).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    from clipswap.models.generator import Generator, inference_generator

    if isinstance(model, Generator):
        return inference_generator(model, bf16=precision == "bf16")
    if precision == "fp32":
        return model
    raise ValueError(
        f"precision {precision!r} needs a clipswap Generator to rebuild, got a {type(model).__name__}; "
        "use precision 'fp32' for other models"
    )


def compile_generator(generator: Callable, image_size: int, id_dim: int,
                      inputs: tuple[str, ...] = (TARGET, IDENTITY)) -> Callable:
    """`generator([...])` compiled for the Keras backend (clipswap.models.compile.compile_predict: a tf.function with
    a fixed signature on TensorFlow, jax.jit on JAX), taking the inputs named by `inputs` in that order (a
    conditioning row's `inputs`).

    Input: target and source [B, S, S, 3] float32 RGB in [-1, 1], identity [B, id_dim] float32 (any B; one trace).
    Output: [B, S, S, 3] float32, the generator's [-1, 1] image (not clipped).
    """
    image = ((None, image_size, image_size, 3), "float32")
    specs = {TARGET: image, IDENTITY: ((None, id_dim), "float32"), SOURCE: image}
    signature = [specs[name] for name in inputs]

    def run(model, *inputs):
        return keras.ops.cast(model(list(inputs)), "float32")

    return compile_predict(generator, run, signature)


#: Feather of a landmark-swap face's paste-back mask, in pixels of a 128 crop (scaled with the crop; our choice): the
#: landmark swap is already Poisson-blended at its region's edge, so the mask only hides the resampling seam.
REGION_FEATHER_128 = 1.5


def region_mask(region: np.ndarray, size: int) -> np.ndarray:
    """[S, S] float32 paste-back mask of a landmark-swap (or warp) face: its landmark-swap region ([S, S] uint8, 255
    inside), eroded by two sigmas and blurred, so pixels outside the region stay the frame's own."""
    sigma = REGION_FEATHER_128 * size / 128.0
    radius = max(1, int(np.ceil(2.0 * sigma)))
    inner = cv2.erode(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    return cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), sigma) * (region > 0)


def color_corrected(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard colour correction of one generated crop ([S, S, 3] float in [0, 1]) to its target crop ([S, S, 3]
    uint8), statistics taken where the blend mask ([S, S] in [0, 1]) exceeds 0.5; returns [S, S, 3] float in [0, 1]."""
    from clipswap.face.landmark_swap import reinhard_transfer

    face_u8 = np.clip(np.round(face * 255.0), 0, 255).astype(np.uint8)
    return reinhard_transfer(face_u8, np.ascontiguousarray(target), mask > 0.5).astype(np.float32) / 255.0


def _shorter_side(detection: Detection) -> float:
    return float(min(detection.box[2] - detection.box[0], detection.box[3] - detection.box[1]))


def source_faces(detections: list[Detection]) -> list[Detection]:
    """The faces of a source, reference or --map image that can carry an identity (MIN_SOURCE_FACE px or more),
    ordered from the left as --source-face counts them (1 = leftmost)."""
    usable = [d for d in detections if _shorter_side(d) >= MIN_SOURCE_FACE]
    return sorted(usable, key=lambda d: float(d.box[0] + d.box[2]))


def best_face(detector, image: np.ndarray, what: str, say_which: bool = False, number: int | None = None) -> Detection:
    """The highest-scoring face `detector` finds in `image`, or with `number` the number-th face counted from the left
    (1 = leftmost; --source-face); NoFaceError naming `what` when there is none or `number` is past the last face.
    `say_which`: when the image holds several faces and no `number` chose one, log (warning) which one is used and
    its number, so it is never silent."""
    found = detector.detect(image)
    from_left = source_faces(found)
    if not from_left:
        if found:
            side = int(max(_shorter_side(d) for d in found))
            raise NoFaceError(f"the face in the {what} is only {side} px across, too small to carry an identity; "
                              f"use a photo where the face is at least {MIN_SOURCE_FACE} px")
        raise NoFaceError(f"no face was found in the {what}; use a clear, frontal photo of one face")
    if number is not None:
        if not 1 <= number <= len(from_left):
            raise NoFaceError(f"--source-face {number} asks for a face the {what} does not have: it holds "
                              f"{len(from_left)} face(s); choose 1 to {len(from_left)} (counted from the left)")
        return from_left[number - 1]
    position, best = max(enumerate(from_left, start=1), key=lambda item: item[1].score)
    if say_which and len(from_left) > 1:
        x0, y0, x1, y1 = (int(round(float(v))) for v in best.box)
        log.warning("the %s holds %d faces; using the most confident one, face %d from the left, at x=%d y=%d "
                    "(%d x %d px); choose another with --source-face N (1 = leftmost)", what, len(from_left),
                    position, x0, y0, x1 - x0, y1 - y0)
    return best


def matching_detections(frame: np.ndarray, detections: list[Detection], identity: IdentityEncoder,
                        reference: np.ndarray, threshold: float) -> list[Detection]:
    """The detections of `frame` whose identity (aligned 112 crop through `identity`) matches the `reference`
    vector at cosine `threshold` or above (--reference-face)."""
    if not detections:
        return []
    crops = np.stack([align_face(frame, d.landmarks, IDENTITY_SIZE)[0] for d in detections])
    keep = matching_faces(identity.embed(crops), reference, threshold)
    return [d for d, k in zip(detections, keep, strict=True) if k]


def _check_paste_options(blend: str, color_correction: str, detail: float, sharpen: float = 0.0) -> None:
    """ValueError for a blend, colour correction, detail or sharpen FaceSwapper cannot paste with."""
    if blend not in BLEND_KINDS:
        raise ValueError(f"blend must be one of {BLEND_KINDS}, got {blend!r}")
    if color_correction not in COLOR_CORRECTIONS:
        raise ValueError(f"color_correction must be one of {COLOR_CORRECTIONS}, got {color_correction!r}")
    if not 0.0 <= detail <= 1.0:
        raise ValueError(f"detail must be in [0, 1], got {detail}")
    if detail and blend == "poisson":
        raise ValueError("detail adds the target's detail to a mask-blended paste; the poisson blend takes none")
    if not 0.0 <= sharpen <= 2.0:
        raise ValueError(f"sharpen must be in [0, 2], got {sharpen}")
    if sharpen and blend == "poisson":
        raise ValueError("sharpen sharpens the generated face of a mask-blended paste; the poisson blend takes none")


class WarpedInput:
    """A stand-in generator that returns its third input unchanged: in a "target+warp" FaceSwapper that is the source's
    face warped onto the target crop's landmarks and pasted in with a hard edge, so the swapper runs the demo
    pipeline without its network (`--model warp`, the control of what the demo network adds)."""

    #: Called like an exported runtime's generator: the numpy inputs in, a numpy output back.
    runs_numpy = True

    def __call__(self, arrays: tuple[np.ndarray, ...]) -> np.ndarray:
        if len(arrays) != 3:
            raise ValueError("WarpedInput needs a target+warp swapper's three inputs (target, identity, warp)")
        return np.asarray(arrays[2], dtype=np.float32)


class FaceSwapper(LegacyFlags):
    """Swap the source identity onto the faces of target frames.

    Args:
        generator: a clipswap Generator, any Keras model, or a callable with the same interface:
            generator([target [B, S, S, 3] float32 RGB in [-1, 1], identity [B, D] float32]) -> [B, S, S, 3] in [-1, 1];
            or an exported runtime's generator (clipswap.inference.runtime.ExportedGenerator: numpy arrays in and out,
            `precision` ignored). A Generator runs in its inference form, built once here from its weights as they
            are now (generator_in_precision): later changes to its weights do not reach the swapper.
        image_size: the generator crop side S.
        id_input_dim: the generator's identity width D (identity vector, then CLIP embedding when used).
        identity: the identity encoder the generator was trained with.
        detector: an object with detect([H, W, 3] uint8 RGB) -> list[Detection] (RetinaFaceDetector, YuNetDetector).
        clip: CLIP embedder for generators whose identity input includes a CLIP embedding, else None.
        blend: "published" (the release's fixed feathered rectangle), "landmarks" (soft face-outline mask) or
            "poisson" (Poisson blending inside the face-outline mask); a landmark-swap generator is pasted over its
            landmark-swap region instead (region_mask), Poisson-blended there with "poisson".
        color_correction: "none" or "reinhard": the generated crop's L*a*b* mean and spread inside the blend mask are
            matched to the target crop's before blending (clipswap.face.landmark_swap.reinhard_transfer).
        feather: blur sigma of the mask in crop pixels; None: 7 * S / 256 (the release's 7 at 256).
        selection: which detected faces to swap.
        similarity: cosine threshold for faces matching a reference face (set_reference).
        precision: "fp32" or "bf16" (generator only, and bf16 only for a clipswap Generator; outputs are float32).
        conditioning: the generator's ModelConfig.conditioning (a name of clipswap.models.conditioning.CONDITIONINGS):
            "target" feeds G the target crop; "refine_landmark_swap" the landmark swap of the source onto each target
            crop (the source's aligned crop and its dlib 68 landmarks kept by set_source); a row with a source
            input adds the source's aligned S x S crop, or for "target+warp" the source face warped onto each target
            crop's 68 landmarks and pasted into it (clipswap.face.landmark_swap.warp_paste). A row whose preparation
            uses the landmarks has G's output pasted back over the region they drive.
        landmarker: (image, Detection) -> [68, 2] landmarks for such a row; None: dlib's (the `eval` extra).
        detail: how much of the target's own detail finer than the enlarged crop is added to the pasted face
            (clipswap.inference.blend.composite; 0 = none); not with the "poisson" blend.
        sharpen: the amount of the unsharp mask applied to the generated face before it is pasted, in [0, 2]
            (clipswap.inference.blend.unsharp: crisper edges, no new detail; 0 = none); not with the "poisson" blend.
        mirror_source: for a row that reads the source's aligned crop as it is (not "target+warp"), give G that crop
            mirrored left to right for each target face that looks to the other side (head_turn,
            MIRROR_TURN_PRODUCT): a generator that reads the source's crop carries some of its head turn into the
            swap, and a face's mirror image shows the same person turned the target's way. The identity vector is
            always the source's own.
        occluder: crops [N, S, S, 3] uint8 RGB -> [N, S, S] float32 occlusion in [0, 1] (an OcclusionMasker), or
            None: each face's paste-back mask is multiplied by 1 - the occlusion of its target crop, so what covers
            the target face (sunglasses, a hand) stays the target's.

    Raises:
        CheckpointError: D differs from the identity encoder's width plus the CLIP width.
        ValueError: an unknown blend or precision, or bf16 for a generator that is not a clipswap Generator.
    """

    def __init__(
        self,
        generator: Callable,
        image_size: int,
        id_input_dim: int,
        identity: IdentityEncoder,
        detector,
        *,
        clip: ClipEmbedder | None = None,
        blend: str = "published",
        feather: float | None = None,
        selection: FaceSelection | None = None,
        similarity: float = DEFAULT_SIMILARITY,
        precision: str = "fp32",
        conditioning: str = "target",
        landmarker: Callable | None = None,
        color_correction: str = "none",
        detail: float = 0.0,
        sharpen: float = 0.0,
        mirror_source: bool = False,
        occluder: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        _check_paste_options(blend, color_correction, detail, sharpen)
        #: The generator's conditioning row: which inputs it reads and how each is prepared.
        self.conditioning_row = get_conditioning(conditioning)
        if self.conditioning_row.landmarks_at_swap and landmarker is None:
            from clipswap.face.landmarks68 import Landmarker68  # needs dlib

            landmarker = Landmarker68()
        expected = identity.dim + (clip.dim if clip is not None else 0)
        if expected != id_input_dim:
            parts = f"{identity.name} ({identity.dim})" + (f" + CLIP {clip.variant} ({clip.dim})" if clip else "")
            raise CheckpointError(
                f"the generator takes a {id_input_dim}-d identity input but {parts} gives {expected}: the checkpoint "
                "and the identity encoder do not belong together."
            )
        self.image_size = int(image_size)
        self.id_input_dim = int(id_input_dim)
        self.identity = identity
        self.detector = detector
        self.clip = clip
        self.blend = blend
        self.feather = feather
        self.selection = selection or FaceSelection()
        self.similarity = float(similarity)
        self.precision = precision
        self.landmarker = landmarker
        self.color_correction = color_correction
        self.detail = float(detail)
        self.sharpen = float(sharpen)
        self.mirror_source = bool(mirror_source)
        self.occluder = occluder
        #: Where the landmark swap / warp takes its triangle transforms
        #: (clipswap.face.landmark_swap.TRANSFORMS): "qhull", the reference of every photo and video swap; the live
        #: stream sets "numpy", its cheaper equal.
        self.warp_transforms = "qhull"
        #: The compiled call of a Keras generator (compile_generator; None for an exported runtime).
        self._compiled = None
        if getattr(generator, "runs_numpy", False):
            # An exported runtime (clipswap.inference.runtime.ExportedGenerator): numpy in, numpy out, its own
            # precision.
            self._generate = lambda *arrays: generator(arrays)
        else:
            self._compiled = compile_generator(generator_in_precision(generator, precision), self.image_size,
                                               self.id_input_dim, self.conditioning_row.inputs)
            self._generate = lambda *arrays: np.asarray(keras.ops.convert_to_numpy(self._compiled(*arrays)))
        self._published = published_mask(self.image_size, feather)
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        """Forget what one run set: its source, mapping and reference, its face tracks, its timings."""
        self.source_vector: np.ndarray | None = None
        #: A conditioning with a source input or a landmark preparation: the source's aligned crop [S, S, 3] uint8;
        #: with a landmark preparation its 68 landmarks in crop pixels (set_source).
        self.source_crop: np.ndarray | None = None
        self.source_68: np.ndarray | None = None
        #: The source face's head_turn (set_source).
        self.source_turn = 0.0
        #: set_mapping: ([R, D] reference identity vectors, [R] source parts (vector, crop, 68 points, turn)) or None.
        self.mapping: tuple[np.ndarray, list] | None = None
        self.reference_vector: np.ndarray | None = None
        #: A landmark preparation: faces whose landmark swap or warp failed and went to G as the plain target crop.
        self.pre_swap_failures = 0
        #: start_tracking: the video's face tracks (None: every frame on its own, as for a photo).
        self.tracker = None
        self.timer = StageTimer()

    def reconfigured(self, *, blend: str = "published", feather: float | None = None,
                     color_correction: str = "none", selection: FaceSelection | None = None,
                     similarity: float = DEFAULT_SIMILARITY, detail: float | None = None,
                     sharpen: float | None = None, mirror_source: bool | None = None,
                     occlusion_mask: bool | None = None) -> FaceSwapper:
        """A swapper that shares this one's networks (generator, identity encoder, CLIP, detector, landmarker), with
        other paste-back and selection options (as the constructor takes them) and none of this one's per-run state
        (source, mapping, reference, tracks, timings): a long-lived process loads the models once and serves each
        request with its own options. `detail` and `sharpen` None keep this swapper's (the checkpoint's
        recommendations, as `clipswap swap` without --detail or --sharpen), 0 with the poisson blend, which takes
        neither; `mirror_source` and `occlusion_mask` None keep this swapper's, occlusion_mask False drops its occluder
        (True needs one). Raises ValueError as the constructor does."""
        if detail is None:
            detail = 0.0 if blend == "poisson" else self.detail
        if sharpen is None:
            sharpen = 0.0 if blend == "poisson" else self.sharpen
        _check_paste_options(blend, color_correction, detail, sharpen)
        if occlusion_mask and self.occluder is None:
            raise ValueError("this swapper was built without an occluder network; it cannot paste around occluders")
        view = copy.copy(self)
        if occlusion_mask is False:
            view.occluder = None
        view.blend, view.feather, view.color_correction = blend, feather, color_correction
        view.selection, view.similarity, view.detail = selection or FaceSelection(), float(similarity), float(detail)
        view.sharpen = float(sharpen)
        if mirror_source is not None:
            view.mirror_source = bool(mirror_source)
        view._published = published_mask(self.image_size, feather)
        view._reset_run_state()
        return view

    @classmethod
    def from_checkpoint(cls, checkpoint, detector, *, files=None, clip_preset=None, runtime: str = "tf",
                        **options) -> FaceSwapper:
        """Build from a loaded GeneratorCheckpoint: the checkpoint's config picks the identity encoder and CLIP;
        `files` ({file key: path}) holds the user's model files, a key left out is looked up in the checkpoint folders.
        `runtime` ("tf", "openvino", "onnxruntime", resolved: clipswap.inference.runtime) runs the generator.

        Raises:
            MissingCheckpointError: the identity encoder's file is needed and absent.
            CheckpointError: a CLIP preset is needed and not given (or given for a generator without CLIP).
            ExportError: the generator does not convert for the runtime.
        """
        from clipswap.checkpoints.encoders import load_clip_embedder, load_identity_encoder

        config = checkpoint.config
        if config.clip_variant is None and clip_preset is not None:
            raise CheckpointError(
                f"{checkpoint.path} takes no CLIP embedding (identity input {config.id_input_dim}-d, "
                f"{config.identity_encoder} only); drop --clip-preset."
            )
        identity = load_identity_encoder(config.identity_encoder, files)
        clip = None
        if config.clip_variant is not None:
            clip = load_clip_embedder(config.clip_variant, clip_preset, config.image_size)
        options.setdefault("conditioning", config.conditioning)
        generator = checkpoint.model
        if runtime != "tf":
            from clipswap.inference.runtime import exported_generator

            generator = exported_generator(checkpoint, runtime, options.get("precision", "fp32"))
        return cls(generator, config.image_size, config.id_input_dim, identity, detector, clip=clip, **options)

    # ------------------------------------------------------------------ source and reference

    def _identity_of_face(self, image: np.ndarray, face: Detection) -> np.ndarray:
        """The generator's identity input for one detected face of `image`: [id_input_dim] float32."""
        crop112, _ = align_face(image, face.landmarks, IDENTITY_SIZE)
        vector = self.identity.embed(crop112[None])[0]
        if self.clip is not None:
            crop, _ = align_face(image, face.landmarks, self.image_size)
            clip_vector = self.clip.embed(crop[None].astype(np.float32) / 127.5 - 1.0)[0]
            vector = np.concatenate([vector, clip_vector])
        return vector.astype(np.float32)

    def _source_parts(self, image: np.ndarray, what: str, number: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, float]:
        """(identity input, for a source input or a landmark preparation the aligned crop, for a landmark preparation
        its 68 landmarks in crop pixels, the face's head_turn) of the best face of a source image, or its
        `number`-th from the left (best_face). Raises NoFaceError."""
        face = best_face(self.detector, image, what, say_which=True, number=number)  # one detection serves all
        vector = self._identity_of_face(image, face)
        turn = head_turn(face.landmarks)
        row = self.conditioning_row
        if not row.landmarks_at_swap and not row.source:
            return vector, None, None, turn
        crop, matrix = align_face(image, face.landmarks, self.image_size)
        if not row.landmarks_at_swap:
            return vector, crop, None, turn
        return vector, crop, transform_points(matrix, self.landmarker(image, face)), turn

    def set_source(self, image: np.ndarray, number: int | None = None) -> np.ndarray:
        """Compute and keep the source identity of the best face of `image`, or of its `number`-th face from the left
        (--source-face; best_face), once per run, timed as SOURCE_STAGE. Raises NoFaceError."""
        with self.timer.stage(SOURCE_STAGE):
            self.source_vector, self.source_crop, self.source_68, self.source_turn = self._source_parts(
                image, "source image", number)
        return self.source_vector

    def set_mapping(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Several people (`--map REF=SRC`): each target face is matched to the most similar reference face (cosine of
        the identity encoder, at `similarity` or above) and swapped with that reference's source; a face matching no
        reference is swapped with the source of set_source when one was set, else left alone.

        Args:
            pairs: (reference image, source image) RGB uint8 pairs. Raises NoFaceError naming the image.
        """
        with self.timer.stage(SOURCE_STAGE):
            references, sources = [], []
            for number, (reference, source) in enumerate(pairs, start=1):
                face = best_face(self.detector, reference, f"reference image of --map {number}")
                crop112, _ = align_face(reference, face.landmarks, IDENTITY_SIZE)
                references.append(self.identity.embed(crop112[None])[0])
                sources.append(self._source_parts(source, f"source image of --map {number}"))
            self.mapping = (np.stack(references), sources)

    def set_reference(self, image: np.ndarray) -> None:
        """Only faces whose identity matches the best face of `image` will be swapped (timed as SOURCE_STAGE).
        Raises NoFaceError."""
        with self.timer.stage(SOURCE_STAGE):
            face = best_face(self.detector, image, "reference face image")
            crop112, _ = align_face(image, face.landmarks, IDENTITY_SIZE)
            self.reference_vector = self.identity.embed(crop112[None])[0]

    # ------------------------------------------------------------------ target

    def start_tracking(self, fps: float, **options) -> None:
        """Follow faces from frame to frame for a video (clipswap.face.tracking.FaceTracker(fps, **options)): each
        face's landmarks are smoothed, a missed detection is bridged by its track, and the reference match and the
        --map source of a face follow its mean similarity over the track. Scene cuts reset the tracks."""
        from clipswap.face.tracking import FaceTracker

        self.tracker = FaceTracker(fps, **options)

    def stop_tracking(self) -> None:
        self.tracker = None

    def _similarities(self, frame: np.ndarray, faces: list[Detection], tracks: list, references: np.ndarray,
                      key: str) -> np.ndarray:
        """[N, R] cosine of each face to each reference; for a tracked face, the mean over its track's frames so
        far (a bridged frame adds nothing), so one poor view neither drops a face nor hands it to another
        reference, and one lucky frame does not select a stranger for good."""
        fresh = [i for i, track in enumerate(tracks) if track is None or track.missed == 0]
        now = np.zeros((0, len(references)))
        if fresh:
            crops = np.stack([align_face(frame, faces[i].landmarks, IDENTITY_SIZE)[0] for i in fresh])
            now = np.atleast_2d(cosine_matrix(self.identity.embed(crops), references))
        result = np.full((len(faces), len(references)), -1.0)
        for i, row in zip(fresh, now, strict=True):
            result[i] = row
            track = tracks[i]
            if track is not None:
                total, count = track.decisions.get(key, (0.0, 0))
                track.decisions[key] = (total + row, count + 1)
        for i, track in enumerate(tracks):
            if track is not None and key in track.decisions:
                total, count = track.decisions[key]
                result[i] = total / count
        return result

    def _select(self, frame: np.ndarray, detections: list[Detection], tracks: list | None) -> tuple[list, list]:
        """(selected faces, their tracks or Nones): the reference-face filter (a tracked face by its track's mean
        similarity), then --faces."""
        if tracks is None:
            tracks = [None] * len(detections)
        pairs = list(zip(detections, tracks, strict=True))
        if self.reference_vector is not None and detections:
            with self.timer.stage("identity"):
                similarity = self._similarities(frame, detections, tracks, self.reference_vector[None], "ref")
            pairs = [pair for pair, value in zip(pairs, similarity[:, 0], strict=True) if value >= self.similarity]
        track_of = {id(face): track for face, track in pairs}
        selected = self.selection.apply([face for face, _ in pairs])  # largest first
        return selected, [track_of[id(face)] for face in selected]

    def swap_frame(self, frame: np.ndarray) -> tuple[np.ndarray, int]:
        """Swap the selected faces of one frame.

        Args:
            frame: [H, W, 3] uint8 RGB.

        Returns:
            ([H, W, 3] uint8 RGB, number of faces swapped). With no selected face the frame itself is returned.
        """
        if self.source_vector is None and self.mapping is None:
            raise RuntimeError("call set_source() or set_mapping() before swap_frame()")
        self.timer.frames += 1
        with self.timer.stage("detect"):
            detections = self.detector.detect(frame)
            tracks = None
            if self.tracker is not None:
                tracks = self.tracker.update(frame, detections)
                detections = [track.face for track in tracks]
        faces, tracks = self._select(frame, detections, tracks)
        faces, sources, tracks = self._sources_for(frame, faces, tracks)
        if not faces:
            return frame, 0
        size = self.image_size
        with self.timer.stage("align"):
            matrices = np.stack([estimate_alignment(face.landmarks, size) for face in faces])
            crops = np.stack([warp_face(frame, matrix, size) for matrix in matrices])
        regions: list[np.ndarray | None] = [None] * len(faces)
        target_crops = crops
        row = self.conditioning_row
        source_crops = [crop for _, crop, _, _ in sources]
        if self.mirror_source and row.source and not row.warped_source:
            source_crops = [crop[:, ::-1] if turn * head_turn(face.landmarks) < -MIRROR_TURN_PRODUCT else crop
                            for face, (_, crop, _, turn) in zip(faces, sources, strict=True)]
        if row.landmarks_at_swap:
            with self.timer.stage("pre_swap"):
                swapped = [self._landmark_swap(frame, face, matrix, crop, source, track)
                           for face, matrix, crop, source, track in zip(faces, matrices, crops, sources, tracks,
                                                                        strict=True)]
                regions = [region for _, region in swapped]
                if row.warped_source:
                    source_crops = [crop for crop, _ in swapped]
                else:
                    crops = np.stack([crop for crop, _ in swapped])
        with self.timer.stage("generate"):
            targets = crops.astype(np.float32) / 127.5 - 1.0
            vectors = np.stack([vector for vector, _, _, _ in sources]).astype(np.float32)
            named = row.named(targets, vectors,
                              np.stack(source_crops).astype(np.float32) / 127.5 - 1.0 if row.source else None)
            inputs = list(named.values())
            outputs = [self._generate(*(x[i : i + MAX_BATCH] for x in inputs)) for i in range(0, len(faces), MAX_BATCH)]
            generated = (np.concatenate(outputs) + 1.0) / 2.0
        with self.timer.stage("blend"):
            masks = np.stack([self._mask(face, matrix) if region is None else region_mask(region, size)
                              for face, matrix, region in zip(faces, matrices, regions, strict=True)])
            if self.occluder is not None:
                masks = masks * (1.0 - self.occluder(target_crops))
            if self.color_correction == "reinhard":
                generated = np.stack([color_corrected(face, target, mask)
                                      for face, target, mask in zip(generated, target_crops, masks, strict=True)])
            if self.blend == "poisson":
                output = composite_poisson(frame, generated, masks, matrices)
            else:
                output = composite(frame, generated, masks, matrices, detail=self.detail, sharpen=self.sharpen)
        self.timer.faces += len(faces)
        return output, len(faces)

    def _sources_for(self, frame: np.ndarray, faces: list[Detection], tracks: list) -> tuple[list, list, list]:
        """(the faces to swap, for each its source parts (vector, crop, 68 points, turn), their tracks): the one source,
        or with a mapping the source of the most similar matching reference (a tracked face: by its track's mean
        similarity); faces matching none take the one source, else are left alone."""
        single = (self.source_vector, self.source_crop, self.source_68, self.source_turn)
        if self.mapping is None or not faces:
            return faces, [single] * len(faces), tracks
        references, mapped = self.mapping
        with self.timer.stage("identity"):
            similarity = self._similarities(frame, faces, tracks, references, "map")
        kept, sources, kept_tracks = [], [], []
        for face, track, row in zip(faces, tracks, similarity, strict=True):
            best = int(np.argmax(row))
            if row[best] >= self.similarity:
                source = mapped[best]
            elif self.source_vector is not None:
                source = single
            else:
                continue
            kept.append(face)
            sources.append(source)
            kept_tracks.append(track)
        return kept, sources, kept_tracks

    def _landmark_swap(self, frame: np.ndarray, face: Detection, matrix: np.ndarray, crop: np.ndarray,
                       source: tuple, track=None) -> tuple[np.ndarray, np.ndarray | None]:
        """(landmark swap of the source crop onto one target crop, [S, S] uint8 region it replaced) for a
        "landmark_swap" target, or for a "warp" source (warp_paste of the source crop onto it, that region); the crop
        itself and None when the landmarks cannot drive it (counted in pre_swap_failures, logged). A tracked face's
        68 points are smoothed by its track."""
        from clipswap.face.landmark_swap import (
            LandmarkSwapError,
            landmark_swap,
            swap_region,
            warp_paste,
        )

        _, source_crop, source_68, _ = source
        points68 = self.landmarker(frame, face)
        if track is not None and self.tracker is not None and self.tracker.smoothing:
            points68 = track.smooth_points("68", points68)
        points = transform_points(matrix, points68)
        try:
            if self.conditioning_row.warped_source:
                return warp_paste(source_crop, source_68, crop, points, transforms=self.warp_transforms)
            return (landmark_swap(source_crop, source_68, crop, points, transforms=self.warp_transforms),
                    swap_region(points, crop.shape[:2]))
        except LandmarkSwapError as error:
            self.pre_swap_failures += 1
            log.warning("the landmark swap failed on a face (%s); the generator reads its plain crop", error)
            return crop, None

    def _mask(self, face: Detection, matrix: np.ndarray) -> np.ndarray:
        if self.blend == "published":
            return self._published
        # "landmarks" and "poisson" (which blends inside this outline) both follow the detected face.
        return landmark_mask(transform_points(matrix, face.landmarks), self.image_size, self.feather)
