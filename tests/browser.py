"""A real browser for report tests: headless Chromium, when the machine has it.

Tests that need it are marked ``@pytest.mark.skipif(CHROMIUM is None, ...)`` and skip cleanly
elsewhere (install it with ``apt-get install -y chromium``; see STACK.md). Chromium runs headless
with no network need: reports must be self-contained.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
"""Path of a Chromium executable, or None."""

_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
)


def _run(args: list[str], timeout: float) -> str:
    assert CHROMIUM is not None, "no Chromium on this machine"
    done = subprocess.run(
        [CHROMIUM, *_FLAGS, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def render(
    page: Path, screenshot: Path, *, size: tuple[int, int] = (1400, 4000), timeout: float = 120
) -> tuple[str, Path]:
    """Open ``page`` (a local HTML file) headless; return the DOM after its scripts ran, and
    a PNG screenshot of the first ``size`` pixels.

    Parameters
    ----------
    page : Path
        The HTML file.
    screenshot : Path
        Where the PNG goes.
    size : (int, int)
        Window width and height in pixels.
    timeout : float
        Seconds allowed for each of the two browser runs.

    Returns
    -------
    (str, Path)
        The serialised DOM (``--dump-dom``) and the screenshot's path.
    """
    url = Path(page).resolve().as_uri()
    dom = _run(["--dump-dom", url], timeout)
    _run([f"--screenshot={screenshot}", f"--window-size={size[0]},{size[1]}", url], timeout)
    if not Path(screenshot).is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {screenshot}")
    return dom, Path(screenshot)
