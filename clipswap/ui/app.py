"""The page of `clipswap ui`, in Gradio: a Photo / video tab (source and target uploads, the faces found in each,
the face table, the options, a one-frame preview, the swap with its progress, the result with `clipswap verify`'s
finding) and a Live tab (webcam frames swapped as they arrive, with the frame rate).

Every handler runs the pipeline through clipswap.ui.jobs / clipswap.ui.live on the process's one ModelCache. Its
failures reach the page as the CLI's one sentence (gr.Error), with upload paths shown by file name; a failure
nobody foresaw is one sentence too and its traceback goes to the terminal's log, never to the page. Every event
that runs a model shares one queue slot (MODELS_QUEUE), so jobs run one at a time and the page shows each waiting
job its place in the queue.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import gradio as gr

from clipswap.errors import ClipswapError, unexpected_message
from clipswap.face.detection import NoFaceError
from clipswap.inference.pipeline import NO_WATERMARK_WARNING
from clipswap.media.common import IMAGE_SUFFIXES, VIDEO_SUFFIXES, media_kind
from clipswap.media.images import read_image
from clipswap.options import BLEND_KINDS, COLOR_CORRECTIONS, PRECISIONS, RUNTIMES
from clipswap.ui.faces import find_faces, frame_at
from clipswap.ui.jobs import Choices, build_request, parse_face_table, preview_request, run_job
from clipswap.ui.live import LiveSwapper
from clipswap.ui.models import ModelCache, ModelKey, PasteOptions

log = logging.getLogger(__name__)

#: The concurrency group of every event that runs a model: one at a time on a small CPU.
MODELS_QUEUE = "models"
#: Seconds between webcam frames sent to the server (the Live tab asks for about 15 a second).
LIVE_FRAME_INTERVAL = 1 / 15
#: The swap's progress: Gradio follows the tqdm bar run_swap shows for a video.
TRACK_TQDM = gr.Progress(track_tqdm=True)
#: The face table's columns.
TABLE_HEADERS = ["target face", "source face"]
#: Why the watermark is on, shown beside its checkbox when it is turned off (the CLI's warning without its option).
WATERMARK_REASON = NO_WATERMARK_WARNING.replace(" (--no-watermark)", "")


def page_error(error: BaseException, uploads: dict[str, str] | None = None) -> gr.Error:
    """The gr.Error that shows `error` on the page: a ClipswapError's own sentence, or for anything else the CLI's
    sentence for the unforeseen (its traceback logged here). Upload paths (temporary folders) become file names."""
    if isinstance(error, ClipswapError):
        message = str(error)
    else:
        log.error("unexpected failure in the UI", exc_info=error)
        message = unexpected_message(error, "`clipswap -vv ui` (the terminal shows it)")
    for path in (uploads or {}).values():
        if path:
            message = message.replace(str(path), Path(path).name)
    return gr.Error(message, print_exception=False)


class Page:
    """The handlers of one UI process: its ModelCache, its work folder (`workdir`, removed by the command at exit)
    and the models offered."""

    def __init__(self, cache: ModelCache, workdir: Path, models: list[str]):
        self.cache = cache
        self.workdir = Path(workdir)
        self.models = models

    def _jobdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.workdir))

    # ------------------------------------------------------------------ faces

    def _faces(self, path: str | None, seconds: float, model: str, runtime: str, precision: str, what: str):
        """(faces found, gallery items, error raised as gr.Error) of an upload; ([], []) with no upload."""
        if not path:
            return [], []
        try:
            image = read_image(path) if what == "source" else frame_at(path, seconds)
            detector = self.cache.detector_of(ModelKey(model, runtime, precision))
            faces = find_faces(detector, image)
        except Exception as error:  # noqa: BLE001 -- every failure becomes the page's one sentence (page_error)
            raise page_error(error, {what: path}) from error
        if not faces:
            raise gr.Error(f"no face was found in the {what} {Path(path).name}; use a clear, frontal photo"
                           + (" or another frame" if what == "target" and media_kind(path) == "video" else ""),
                           print_exception=False)
        return faces, [(face.crop, str(face.number)) for face in faces]

    def analyse(self, source, target, seconds, model, runtime, precision):
        """Upload or frame changed: the galleries, the face table (every target face gets the source's first face,
        or the one the CLI would take: its most confident), the preview slider's range and the faces kept."""
        source_faces, source_items = self._faces(source, 0.0, model, runtime, precision, "source")
        target_faces, target_items = self._faces(target, seconds, model, runtime, precision, "target")
        default = _most_confident(source_faces) if source_faces else ""
        table = [[face.number, default] for face in target_faces]
        slider = gr.update()
        if target and media_kind(target) == "video":
            slider = gr.update(maximum=max(_duration(target), 0.1), visible=True, interactive=True)
        elif target:
            slider = gr.update(visible=False)
        return source_items, target_items, table, slider, (source_faces, target_faces)

    # ------------------------------------------------------------------ swaps

    def _request(self, source, target, table, faces, options, jobdir: Path):
        if not source or not target:
            raise gr.Error("upload a source photo and a target photo or video first", print_exception=False)
        source_faces, target_faces = faces or ([], [])
        if not source_faces or not target_faces:
            raise gr.Error("no faces to choose from yet: wait for the face galleries to fill", print_exception=False)
        choices = _choices(*options)
        rows = table.values.tolist() if hasattr(table, "values") else list(table or [])
        assignments = parse_face_table(rows, len(target_faces), len(source_faces))
        output = jobdir / f"swapped{Path(target).suffix.lower()}"
        request = build_request(Path(source), Path(target), output, assignments, source_faces, target_faces,
                                choices, jobdir)
        return request, choices

    def swap(self, source, target, table, faces, model, blend, color_correction, precision, runtime, similarity,
             tracking, smoothing, watermark, progress=TRACK_TQDM):
        """Run the whole swap; (result image, result video, download, report). The options are named one by one,
        not gathered in *args: Gradio only finds a positional `progress` parameter, and without it the video's
        progress bar would not show."""
        uploads = {"source": source, "target": target}
        options = (model, blend, color_correction, precision, runtime, similarity, tracking, smoothing, watermark)
        try:
            jobdir = self._jobdir()
            request, choices = self._request(source, target, table, faces, options, jobdir)
            result = run_job(self.cache, request, choices)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 -- every failure becomes the page's one sentence (page_error)
            raise page_error(error, uploads) from error
        video = media_kind(result.output) == "video"
        return (None if video else str(result.output), str(result.output) if video else None, str(result.output),
                _report(result, uploads))

    def preview(self, source, target, table, faces, seconds, *options):
        """Swap one frame (the one at `seconds` of a video); (result image, report)."""
        uploads = {"source": source, "target": target}
        try:
            jobdir = self._jobdir()
            request, choices = self._request(source, target, table, faces, options, jobdir)
            result = run_job(self.cache, preview_request(request, seconds, jobdir), choices)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 -- every failure becomes the page's one sentence (page_error)
            raise page_error(error, uploads) from error
        return str(result.output), "**Preview of one frame.** " + _report(result, uploads)

    # ------------------------------------------------------------------ live

    def live(self, frame, source, model, runtime, precision, watermark, session):
        """One webcam frame: (swapped frame, frame rate line, the stream's LiveSwapper state)."""
        if frame is None:
            return None, "", session
        if not source:
            return frame, "upload a source photo to start swapping", session
        key = (source, model, runtime, precision, bool(watermark))
        try:
            if session is None or session[0] != key:
                swapper, _ = self.cache.swapper(ModelKey(model, runtime, precision), PasteOptions())
                session = (key, LiveSwapper(swapper, read_image(source), watermark=bool(watermark)))
            result = session[1].process(frame)
        except NoFaceError as error:
            return frame, page_error(error, {"source": source}).message, None
        except Exception as error:  # noqa: BLE001 -- every failure becomes the page's one sentence (page_error)
            raise page_error(error, {"source": source}) from error
        return result.image, result.describe(), session


def _most_confident(faces) -> int:
    """The number of the face the CLI takes from a source with several (best_face: the highest score)."""
    return max(faces, key=lambda face: face.score).number


def _duration(path: str) -> float:
    from clipswap.media.video import VideoReader

    with VideoReader(path) as reader:
        return float(reader.info.duration or reader.info.frame_estimate / reader.info.fps)


def _choices(model, blend, color_correction, precision, runtime, similarity, tracking, smoothing,
             watermark) -> Choices:
    return Choices(ModelKey(model, runtime, precision), PasteOptions(blend, color_correction, float(similarity)),
                   bool(tracking), bool(smoothing), bool(watermark))


def _report(result, uploads: dict[str, str]) -> str:
    """The result's text: what ran, what was done, and `clipswap verify`'s finding."""
    verdict = "marked as made by clipswap" if result.marked else "NOT marked"
    lines = [f"`{result.models_line}`", "", result.summary, "",
             f"**clipswap verify:** {verdict}", "```", *result.verify_lines[1:], "```"]
    lines += [f"*{note}*" for note in result.notes]
    text = "\n".join(lines).replace(str(result.output), result.output.name)
    for path in uploads.values():
        if path:
            text = text.replace(str(path), Path(path).name)
    return text


def build_page(page: Page) -> gr.Blocks:
    """The Blocks of the page (queue set: one model job at a time)."""
    images, media = list(IMAGE_SUFFIXES), list(IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    with gr.Blocks(title="clipswap", analytics_enabled=False) as blocks:
        gr.Markdown("# clipswap\nFace swapping, on this machine only. Every result carries a label and an "
                    "invisible watermark that `clipswap verify` reads.")
        faces = gr.State(None)
        with gr.Tab("Photo / video", id="photo"):
            with gr.Row():
                source = gr.File(label="Source photo (the identity to put in)", file_types=images, type="filepath",
                                 elem_id="source-file")
                target = gr.File(label="Target photo or video (the faces to replace)", file_types=media,
                                 type="filepath", elem_id="target-file")
            with gr.Row():
                source_gallery = gr.Gallery(label="Faces in the source (numbered from the left)", columns=6,
                                            height=200, object_fit="contain", elem_id="source-faces")
                target_gallery = gr.Gallery(label="Faces in the target (numbered from the left)", columns=6,
                                            height=200, object_fit="contain", elem_id="target-faces")
            seconds = gr.Slider(0, 1, value=0, step=0.1, label="Video: frame shown and previewed (seconds)",
                                visible=False, elem_id="preview-seconds")
            table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["number", "str"], column_count=(2, "fixed"),
                                 interactive=True, label="Face table: which source face each target face gets "
                                 "(none: left alone)", elem_id="face-table")
            with gr.Accordion("Options", open=True):
                with gr.Row():
                    model = gr.Dropdown(page.models, value=page.models[0], label="Model", elem_id="model")
                    runtime = gr.Dropdown(list(RUNTIMES), value="auto", label="Runtime")
                    precision = gr.Radio(list(PRECISIONS), value="fp32", label="Precision")
                with gr.Row():
                    blend = gr.Radio(list(BLEND_KINDS), value="published", label="Blend")
                    color = gr.Radio(list(COLOR_CORRECTIONS), value="none", label="Colour correction")
                    similarity = gr.Slider(-1, 1, value=PasteOptions().similarity, step=0.05,
                                           label="Similarity needed to match a mapped face")
                with gr.Row():
                    tracking = gr.Checkbox(True, label="Video: track faces across frames")
                    smoothing = gr.Checkbox(True, label="Video: smooth tracked landmarks")
                    watermark = gr.Checkbox(True, label="Invisible watermark", elem_id="watermark")
                watermark_reason = gr.Markdown(f"**Watermark off.** {WATERMARK_REASON}.", visible=False,
                                               elem_id="watermark-reason")
            with gr.Row():
                preview_button = gr.Button("Preview one frame", elem_id="preview")
                swap_button = gr.Button("Swap", variant="primary", elem_id="swap")
            with gr.Row():
                result_image = gr.Image(label="Result", type="filepath", interactive=False, elem_id="result-image")
                result_video = gr.Video(label="Result video", interactive=False, elem_id="result-video")
            download = gr.File(label="Download", interactive=False, elem_id="download")
            report = gr.Markdown(elem_id="report")

        with gr.Tab("Live", id="live"):
            gr.Markdown("Your webcam's frames are swapped on this machine as they arrive (tracking and smoothing "
                        "on). The Photo tab's model, runtime, precision and watermark apply.")
            live_source = gr.File(label="Source photo", file_types=images, type="filepath", elem_id="live-source")
            with gr.Row():
                webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                                  elem_id="webcam")
                live_output = gr.Image(label="Swapped", streaming=True, interactive=False, elem_id="live-output")
            live_rate = gr.Markdown(elem_id="live-rate")
            live_session = gr.State(None)

        options = [model, blend, color, precision, runtime, similarity, tracking, smoothing, watermark]
        analysis = dict(fn=page.analyse, inputs=[source, target, seconds, model, runtime, precision],
                        outputs=[source_gallery, target_gallery, table, seconds, faces],
                        concurrency_id=MODELS_QUEUE, concurrency_limit=1)
        source.change(**analysis)
        target.change(**analysis)
        seconds.release(**analysis)
        watermark.change(lambda on: gr.update(visible=not on), watermark, watermark_reason, queue=False)
        preview_button.click(page.preview, [source, target, table, faces, seconds, *options],
                             [result_image, report], concurrency_id=MODELS_QUEUE, concurrency_limit=1)
        swap_button.click(page.swap, [source, target, table, faces, *options],
                          [result_image, result_video, download, report], concurrency_id=MODELS_QUEUE,
                          concurrency_limit=1)
        webcam.stream(page.live, [webcam, live_source, model, runtime, precision, watermark, live_session],
                      [live_output, live_rate, live_session], stream_every=LIVE_FRAME_INTERVAL,
                      concurrency_id=MODELS_QUEUE, concurrency_limit=1, show_progress="hidden")
    blocks.queue(default_concurrency_limit=1)
    return blocks
