"""`clipswap ui` in a real browser: Debian's headless Chromium driven by Selenium opens the page that a `clipswap ui`
process serves, swaps inference.sh's two example faces (the result is judged a swap by SFace), shows an unreadable
upload's one sentence, streams a clip through Chromium's fake webcam into the Live tab and gets swapped frames back,
and never asks for anything but the local server. The server's temporary folder is gone after it stops.

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
                                    str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
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


def test_the_temporary_folder_is_removed_when_the_server_stops(server):
    url, workdir, process = server
    assert workdir.is_dir() and any(workdir.rglob("*"))  # the uploads and results of the tests above
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert not workdir.exists()
