"""`clipswap ui`: the browser UI (clipswap/ui/), served on this machine only unless --host says otherwise."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import click

from clipswap.commands.params import LiveChoice
from clipswap.options import DETECTORS, MODEL_NAMES

#: The largest upload, in megabytes (a few minutes of phone video; photos are far smaller).
DEFAULT_MAX_UPLOAD_MB = 500
#: What the page must never do on its own: report to Gradio's or Hugging Face's servers, or check for updates.
OFFLINE_ENVIRONMENT = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                       "GRADIO_SHARE": "False", "GRADIO_SSR_MODE": "False", "GRADIO_MCP_SERVER": "False"}


def offline_environment(workdir: Path) -> None:
    """Set, before Gradio is imported, its temporary folder (uploads and results) to `workdir` and every switch of
    OFFLINE_ENVIRONMENT (Gradio reads them at import)."""
    os.environ.update(OFFLINE_ENVIRONMENT)
    os.environ["GRADIO_TEMP_DIR"] = str(workdir)


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 127.0.0.1 serves this machine only, 0.0.0.0 every network it is on "
                   "(anyone who can reach it can upload and swap).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@click.option("--model", "models", multiple=True, metavar="PATH|auto|demo|landmarks|warp",
              help="Models the page offers (repeatable), the first selected; default: auto, demo, landmarks, "
                   "warp.")
@click.option("--detector", type=LiveChoice(DETECTORS), default="auto",
              help="auto: RetinaFace when its file is present, else the offline YuNet.")
@click.option("--max-upload-mb", type=click.IntRange(1), default=DEFAULT_MAX_UPLOAD_MB, show_default=True,
              help="Largest file accepted from the page, in megabytes (the pixel limit is clipswap --max-pixels).")
def ui(host, port, models, detector, max_upload_mb):
    """Serve the browser UI: swap photos and videos (face galleries, options, one-frame preview, progress, the
    result with `clipswap verify`'s finding) and a live webcam tab.

    \b
    Example:
      clipswap ui                      # then open http://127.0.0.1:7860
      clipswap --max-pixels 20000000 ui --port 8080

    Uploads and results live in a temporary folder removed when the server stops (Ctrl-C). Nothing is fetched
    from the internet: no share link, no analytics, no update check. Models load on first use, once.
    """
    if importlib.util.find_spec("gradio") is None:
        raise click.ClickException("the browser UI needs Gradio, which is not installed: install clipswap with its "
                                   "ui extra (python -m pip install -e \".[ui]\")")
    workdir = Path(tempfile.mkdtemp(prefix="clipswap-ui-"))
    offline_environment(workdir)
    try:
        from clipswap.ui.app import Page, build_page
        from clipswap.ui.models import ModelCache

        offered = list(models) or list(MODEL_NAMES)
        blocks = build_page(Page(ModelCache(detector), workdir, offered))
        try:
            blocks.launch(server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
                          max_file_size=max_upload_mb * 1024 * 1024, show_error=True, quiet=True, ssr_mode=False,
                          enable_monitoring=False, mcp_server=False, pwa=False, allowed_paths=[str(workdir)])
        except OSError as error:
            # Gradio says "Cannot find empty port" for a port in use and passes the socket's own error otherwise.
            reason = str(error).splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
            raise click.ClickException(f"cannot serve the page on {host}:{port} ({reason}): the port is in use or the "
                                       "address is not this machine's; choose another with --port or --host") from error
        # Ctrl-C must reach the loop below as KeyboardInterrupt, whatever handler the server installed while
        # launching (one that closes the server first waits for a running swap).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        click.echo(f"clipswap ui: serving http://{host}:{port} (Ctrl-C stops it; uploads and results in {workdir}, "
                   "removed at exit)")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        # A swap still running in Gradio's worker threads would hold the process until it ends (minutes for a
        # video on a busy CPU); its output was going to the folder removed here, so the process ends now.
        shutil.rmtree(workdir, ignore_errors=True)
        click.echo("Interrupted.", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    finally:
        if "blocks" in locals():
            blocks.close()
        shutil.rmtree(workdir, ignore_errors=True)
