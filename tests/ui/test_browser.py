"""`clipswap ui` in a real browser: Debian's headless Chromium driven by Selenium opens the page that a `clipswap ui`
process serves, swaps inference.sh's two example faces (the result is judged a swap by SFace), shows an unreadable
upload's one sentence and an oversized upload's, swaps a short video with its progress shown and offers it for
download, previews the frame at a chosen time, maps two people to two source faces through the face table, queues a
second job behind the first, streams a clip through Chromium's fake webcam into the Live tab and gets swapped frames
back, and never asks for anything but the local server. The server's temporary folder is gone after it stops.

Skipped with the reason when chromium, chromedriver or selenium is missing (failed under CI, whose .ci/run installs
them). With CLIPSWAP_UI_SCREENSHOTS=DIR the photo and live tabs are also saved there as JPEGs (README's pictures).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from clipswap.checkpoints.pretrained import DEMO_DIR, DEMO_FILE
from clipswap.media.images import read_image

from conftest import REPO_ROOT, example_faces, require_module, sface_cosines_to_source, shared_data, skip_or_fail

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: Seconds a page element may take to appear (the first swap loads the models on this 2-core CPU).
WAIT = 120
#: The server's upload limit in megabytes (--max-upload-mb): the example faces fit under it, OVERSIZED does not.
UPLOAD_LIMIT_MB = 1
OVERSIZED = int(1.5 * 1024 * 1024)
#: The short video the photo/video tab swaps: its frames and the second from which a red square fills its corner.
CLIP_FRAMES, CLIP_FPS, MARK_FROM = 15, 10, 1.0


def _browser_paths() -> tuple[str, str]:
    require_module("selenium", "it drives the browser in the UI tests")
    chromium = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    driver = shutil.which("chromedriver") or (CHROMEDRIVER if Path(CHROMEDRIVER).exists() else None)
    if not chromium or not driver:
        skip_or_fail("headless Chromium and its driver are absent: apt-get install -y chromium chromium-driver")
    return chromium, driver


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A `clipswap ui --model demo` process on a free port: (its URL, its temporary folder, the process)."""
    require_module("gradio", "the ui extra: pip install -e '.[ui]'")
    if not (DEMO_DIR / DEMO_FILE).is_file():
        pytest.skip("the shipped demo generator is absent (it is committed to pretrained_ckpts/demo/)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "clipswap.cli", "ui", "--model", "demo", "--port",
                                    str(port), "--max-upload-mb", str(UPLOAD_LIMIT_MB)], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    url, workdir = f"http://127.0.0.1:{port}", None
    deadline = time.monotonic() + WAIT
    while workdir is None:
        found = re.search(r"uploads and results in (\S+), removed at exit", log.read_text())
        workdir = Path(found.group(1)) if found else None
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"clipswap ui did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield url, workdir, process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 s of talking_head_1.mp4 at 640 x 480, 15 fps, as the y4m file Chromium's fake camera plays."""
    import imageio_ffmpeg

    video = shared_data("video", "talking_head_1.mp4")
    path = tmp_path_factory.mktemp("camera") / "clip.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(video), "-t", "4", "-vf",
                    "scale=640:480,fps=15", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """1.5 s of talking_head_1.mp4 at 256 x 256 and 10 fps (CLIP_FRAMES frames), with a red 32 px square in its
    top-left corner from MARK_FROM seconds on, so a frame shows which time it came from."""
    import imageio_ffmpeg

    video = shared_data("video", "talking_head_1.mp4")
    path = tmp_path_factory.mktemp("video") / "short.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(video), "-t",
                    str(CLIP_FRAMES / CLIP_FPS), "-an", "-vf", f"scale=256:-2,fps={CLIP_FPS},drawbox=x=0:y=0:w=32:"
                    f"h=32:color=red:t=fill:enable='gte(t,{MARK_FROM})'", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def browser(clip):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500",
                     "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                     f"--use-file-for-fake-video-capture={clip}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


def _wait(condition, what: str, seconds: float = WAIT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _open(browser, url: str, tab: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url)
    _wait(lambda: browser.find_elements(By.ID, "source-file"), "the page")
    if tab:
        next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == tab).click()


def _upload(browser, element_id: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, f"#{element_id} input[type=file]").send_keys(str(path))


def _fetch(url: str, path: Path) -> Path:
    with urllib.request.urlopen(url, timeout=30) as response:
        path.write_bytes(response.read())
    return path


def _marked(image: np.ndarray) -> bool:
    """Whether the short clip's red square fills the top-left corner of `image` (RGB)."""
    red, green, blue = image[4:28, 4:28].reshape(-1, 3).mean(axis=0)
    return red > 180 and green < 80 and blue < 80


def _texts(browser, selector: str) -> list[str]:
    """The text of every element matching `selector` now (an element Gradio replaced meanwhile is skipped)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    texts = []
    for element in browser.find_elements(By.CSS_SELECTOR, selector):
        try:
            texts.append(element.text)
        except StaleElementReferenceException:
            continue
    return texts


def _upload_pair(browser, url: str, source: Path, target: Path, target_faces: int = 1) -> None:
    """Open the page, upload `source` and `target`, and wait for the face galleries."""
    from selenium.webdriver.common.by import By

    _open(browser, url)
    _upload(browser, "source-file", source)
    _upload(browser, "target-file", target)
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#target-faces img")) >= target_faces
          and browser.find_elements(By.CSS_SELECTOR, "#source-faces img"), "the face galleries")


def _fetch_image(url: str) -> np.ndarray:
    import cv2

    with urllib.request.urlopen(url, timeout=30) as response:
        data = np.frombuffer(response.read(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


def _screenshot(browser, name: str) -> None:
    folder = os.environ.get("CLIPSWAP_UI_SCREENSHOTS")
    if folder:
        from PIL import Image

        png = Path(folder) / f"{name}.png"
        browser.save_screenshot(str(png))
        image = Image.open(png).convert("RGB")
        image.thumbnail((900, 1400))
        image.save(png.with_suffix(".jpg"), quality=80)
        png.unlink()


def _requests(browser) -> list[str]:
    """Every URL the page asked for since the last call (Chromium's performance log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_the_photo_tab_swaps_the_example_faces_and_fetches_nothing_from_outside(server, browser):
    from selenium.webdriver.common.by import By

    url, _, _ = server
    source, target = example_faces()
    _open(browser, url)
    _upload(browser, "source-file", source)
    _upload(browser, "target-file", target)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#target-faces img")
          and browser.find_elements(By.CSS_SELECTOR, "#source-faces img"), "the face galleries")
    browser.find_element(By.ID, "swap").click()
    result = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#result-image img"), "the result image")
    report = _wait(lambda: "clipswap verify" in browser.find_element(By.ID, "report").text
                   and browser.find_element(By.ID, "report").text, "the verify report")
    assert "generator: demo" in report and "marked as made by clipswap" in report and "watermark  found" in report
    assert "/tmp" not in report  # the server's folders are not shown, only file names
    swapped = _fetch_image(result[0].get_attribute("src"))
    after, before = sface_cosines_to_source(read_image(source), read_image(target), swapped)
    assert after > before, f"SFace cosine to the source: swap {after:.3f}, target's own face {before:.3f}"
    _screenshot(browser, "ui_photo")
    outside = [u for u in _requests(browser) if not u.startswith((url, "data:", "blob:"))]
    assert outside == [], f"the page asked for {outside}"


def test_an_unreadable_upload_shows_its_sentence(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _, _ = server
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"not a picture at all")
    _open(browser, url)
    _upload(browser, "source-file", broken)
    text = _wait(lambda: " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".toast-body")),
                 "the error message")
    assert "holiday.jpg cannot be read as an image (corrupt or not really a .jpg file)" in text
    assert "Traceback" not in browser.page_source and "/tmp/" not in text


def test_the_live_tab_returns_swapped_webcam_frames(server, browser):
    from selenium.webdriver.common.by import By

    url, _, _ = server
    source, _ = example_faces()
    _open(browser, url, tab="Live")
    _upload(browser, "live-source", source)
    _wait(lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "#webcam button")
                   if "Access Webcam" in b.text], "the webcam button")[0].click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#webcam button.capture-button"),
          "the record button")[0].click()
    rate = _wait(lambda: re.search(r"([\d.]+) fps, \d+ ms a frame, ([1-9]\d*) face\(s\) swapped",
                                   browser.find_element(By.ID, "live-rate").text), "a swapped live frame")
    first = browser.find_element(By.CSS_SELECTOR, "#live-output img").get_attribute("src")
    _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#live-output img").get_attribute("src") != first,
          "a second live frame")
    frame = _fetch_image(browser.find_element(By.CSS_SELECTOR, "#live-output img").get_attribute("src"))
    assert frame.shape[:2] == (480, 640) and int(rate.group(2)) >= 1
    # The clip's own face is one person throughout: the returned frame's face is nearer the source than it.
    from clipswap.ui.faces import frame_at

    camera = frame_at(shared_data("video", "talking_head_1.mp4"), 0.5)
    after, before = sface_cosines_to_source(read_image(source), camera, frame)
    assert after > before, f"SFace cosine to the source: live frame {after:.3f}, the clip's face {before:.3f}"
    _wait(lambda: float(re.search(r"([\d.]+) fps", browser.find_element(By.ID, "live-rate").text).group(1)) > 0,
          "a frame rate")
    _screenshot(browser, "ui_live")


def test_an_upload_over_the_size_limit_gets_its_sentence(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, workdir, _ = server
    oversized = tmp_path / "huge_holiday.jpg"
    oversized.write_bytes(b"\xff\xd8" + bytes(OVERSIZED))
    _open(browser, url)
    _upload(browser, "source-file", oversized)
    text = _wait(lambda: " ".join(_texts(browser, ".toast-body")), "the error message")
    assert f"exceed the maximum allowed size of {UPLOAD_LIMIT_MB}" in text and "huge_holiday.jpg" in text
    assert "Traceback" not in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "#source-faces img")
    assert not list(workdir.rglob("huge_holiday.jpg"))  # refused before anything was written


def test_a_short_video_is_swapped_with_its_progress_shown_and_offered_for_download(server, browser, short_clip,
                                                                                 tmp_path):
    from selenium.webdriver.common.by import By

    from clipswap.media.verification import verify_file
    from clipswap.media.video import VideoReader

    url, _, _ = server
    source, _ = example_faces()
    _upload_pair(browser, url, source, short_clip)
    browser.find_element(By.ID, "swap").click()
    progress = set()

    def finished():
        progress.update(re.findall(rf"\b(\d+)/{CLIP_FRAMES} frame", " ".join(_texts(browser, ".progress-text"))))
        return browser.find_elements(By.CSS_SELECTOR, "#download a[download]")

    link = _wait(finished, "the download link")[0]
    assert progress, "the page never showed the frames done out of the video's"
    assert browser.find_elements(By.CSS_SELECTOR, "#result-video video")
    assert link.get_attribute("href").endswith("swapped.mp4")
    report = browser.find_element(By.ID, "report").text
    assert f"swapped {CLIP_FRAMES} face(s) in {CLIP_FRAMES} of {CLIP_FRAMES} frame(s)" in report
    downloaded = _fetch(link.get_attribute("href"), tmp_path / "swapped.mp4")
    with VideoReader(downloaded) as reader:
        frames = list(reader)
    assert len(frames) == CLIP_FRAMES and frames[0].shape == (256, 256, 3)
    assert not _marked(frames[0]) and _marked(frames[-1])  # the clip's own frames, in order
    marked, _ = verify_file(downloaded)
    assert marked


def test_the_preview_swaps_the_frame_at_the_chosen_time(server, browser, short_clip):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _, _ = server
    source, _ = example_faces()
    _upload_pair(browser, url, source, short_clip)
    seconds = _wait(lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, "#preview-seconds input[type=number]")
                             if e.is_displayed()], "the video's time slider")[0]
    shown = []
    for chosen in (MARK_FROM + 0.2, 0.2):
        seconds.send_keys(Keys.CONTROL, "a")
        seconds.send_keys(str(chosen), Keys.TAB)
        before = [e.get_attribute("src") for e in browser.find_elements(By.CSS_SELECTOR, "#result-image img")]
        browser.find_element(By.ID, "preview").click()
        image = _wait(lambda old=before: [e for e in browser.find_elements(By.CSS_SELECTOR, "#result-image img")
                                          if e.get_attribute("src") not in old], "the preview")[0]
        assert "Preview of one frame" in browser.find_element(By.ID, "report").text
        shown.append(_fetch_image(image.get_attribute("src")))
    assert shown[0].shape == (256, 256, 3)
    assert _marked(shown[0]) and not _marked(shown[1])
    from clipswap.ui.faces import frame_at

    after, before = sface_cosines_to_source(read_image(source), frame_at(short_clip, 0.2), shown[1])
    assert after > before, f"SFace cosine to the source: preview {after:.3f}, the frame's own face {before:.3f}"


def _side_by_side(images: list[np.ndarray], height: int) -> np.ndarray:
    import cv2

    return np.concatenate([cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height),
                                      interpolation=cv2.INTER_AREA) for image in images], axis=1)


def _set_cell(browser, row: int, column: int, text: str) -> None:
    """Type `text` into the face table's cell (row, column), counted from 0 below the header."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cell = browser.find_element(By.CSS_SELECTOR, f"#face-table [data-testid=cell-{row}-{column}]")
    ActionChains(browser).double_click(cell).perform()
    editor = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#face-table textarea, #face-table input:not("
                                                 "[type=file])"), "the cell's editor")[0]
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(text, Keys.ENTER)
    shown = f"#face-table [data-testid=cell-{row}-{column}] span[data-editable]"
    _wait(lambda: browser.find_element(By.CSS_SELECTOR, shown).text.strip() == text, f"the cell to read {text}")


def test_two_people_are_mapped_to_their_own_source_faces(server, browser, tmp_path):
    """The face table maps target face 1 to source face 2 and target face 2 to source face 1 (as --map does): each
    swapped face is nearer, for SFace, its own source face than the other."""
    import cv2
    from selenium.webdriver.common.by import By

    from clipswap.evaluation.identity_models import SFaceModel
    from clipswap.face.similarity import cosine_similarity
    from clipswap.face.yunet import YuNetDetector

    url, _, _ = server
    lfw = shared_data("lfw")
    people = [read_image(lfw / name / f"{name}_0001.jpg")[40:210, 40:210] for name in ("Adrien_Brody",
                                                                                       "Abdullah_Gul")]
    source_path, target_path = tmp_path / "two_sources.jpg", tmp_path / "two_targets.jpg"
    cv2.imwrite(str(source_path), _side_by_side(people, 200)[..., ::-1])
    cv2.imwrite(str(target_path), _side_by_side([read_image(p) for p in example_faces()], 300)[..., ::-1])
    _upload_pair(browser, url, source_path, target_path, target_faces=2)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#face-table [data-testid=cell-1-1]"), "the face table")
    _set_cell(browser, 0, 1, "2")
    _set_cell(browser, 1, 1, "1")
    browser.find_element(By.ID, "swap").click()
    result = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#result-image img"), "the result image")
    assert "swapped 2 face(s)" in browser.find_element(By.ID, "report").text
    swapped = _fetch_image(result[0].get_attribute("src"))

    model, detector = SFaceModel(), YuNetDetector()

    def embeddings(image: np.ndarray) -> list[np.ndarray]:
        faces = sorted(detector.detect(image), key=lambda face: float(face.box[0]))  # from the left
        assert len(faces) == 2, "the two faces are found again"
        return [model.embed(image, face) for face in faces]

    sources, faces = embeddings(read_image(source_path)), embeddings(swapped)
    for face, own, other in ((faces[0], sources[1], sources[0]), (faces[1], sources[0], sources[1])):
        assert cosine_similarity(face, own) > cosine_similarity(face, other)


def test_a_second_job_waits_in_the_queue_and_shows_its_place(server, browser, short_clip):
    """Two pages ask for a swap at once (a short video, then a photo): the second shows its place in the queue while
    the first runs, and finishes only after the first (one model job at a time)."""
    from selenium.webdriver.common.by import By

    url, _, _ = server
    source, target = example_faces()
    first = browser.current_window_handle
    _upload_pair(browser, url, source, short_clip)
    browser.switch_to.new_window("tab")
    second = browser.current_window_handle
    try:
        _upload_pair(browser, url, source, target)
        browser.switch_to.window(first)
        browser.find_element(By.ID, "swap").click()
        _wait(lambda: re.search(r"\d+/\d+ frame", " ".join(_texts(browser, ".progress-text"))), "the first job")
        browser.switch_to.window(second)
        browser.find_element(By.ID, "swap").click()
        place = _wait(lambda: re.search(r"queue: (\d+)/(\d+)", " ".join(_texts(browser, ".progress-text"))),
                      "the second job's place in the queue")
        assert int(place.group(1)) >= 1
        # The photo swap takes a second or two, the video's many: had it not waited, it would finish first.
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#result-image img"), "the second job's result")
        browser.switch_to.window(first)
        assert browser.find_elements(By.CSS_SELECTOR, "#download a[download]"), \
            "the second job finished while the first was still running"
    finally:
        if browser.current_window_handle != second:
            browser.switch_to.window(second)
        browser.close()
        browser.switch_to.window(first)


def test_the_temporary_folder_is_removed_when_the_server_stops(server):
    url, workdir, process = server
    assert workdir.is_dir() and any(workdir.rglob("*"))  # the uploads and results of the tests above
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert not workdir.exists()
