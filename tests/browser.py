"""A real browser for report tests: headless Chromium, when the machine has it.

Tests that need it are marked ``@pytest.mark.skipif(CHROMIUM is None, ...)`` and skip cleanly
elsewhere (install it with ``apt-get install -y chromium``; see STACK.md). Chromium runs headless
with the network cut off (unresolvable host names, a dead proxy): reports must be
self-contained, and a page that tries to fetch something shows it as a script error.

- :func:`open_page` opens a page once and tells what a reader would see: the DOM after the
  scripts ran, the script errors (uncaught exceptions, rejected promises, ``console.error``,
  resources that failed to load), and each plot as drawn (Bokeh figures with the pixels their
  canvases hold, inline SVG charts with their shapes), plus a screenshot.
- :func:`check_offline_page` is the assertion every HTML output of the project passes: no
  reference to anything outside the file, no script error, and at least ``min_plots`` plots
  that drew something in colour.
- :func:`render` is the older two-value form (DOM and screenshot) used by onboarding tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

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
    # no network: any fetch fails (and is reported), so a page that needs one cannot pass
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--enable-logging=stderr",
    "--v=0",
)

#: Injected first into the page's <head> in a copy that only the DOM run opens: it records script
#: errors as they happen and, at 1, 4, 9 and 14 s of (virtual) time, what each plot holds, as
#: JSON in attributes of <html> that --dump-dom then shows.
_PROBE = """<script>(function () {
  var errors = [];
  function note(text) {
    errors.push(String(text).slice(0, 500));
    document.documentElement.setAttribute("data-probe-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) {
    if (e.target && e.target !== window && (e.target.src || e.target.href)) {
      note("failed to load " + (e.target.src || e.target.href));
    } else {
      note("uncaught " + (e.error && e.error.stack ? e.error.stack : e.message));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    note("unhandled rejection " + (e.reason && e.reason.stack ? e.reason.stack : e.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    note("console.error " + Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  };
  function walk(root, visit) {
    root.querySelectorAll("*").forEach(function (el) {
      visit(el);
      if (el.shadowRoot) { walk(el.shadowRoot, visit); }
    });
  }
  function pixels(canvas) {
    var painted = 0, colour = 0;
    if (!canvas.width || !canvas.height) { return [0, 0]; }
    var d = canvas.getContext("2d", {willReadFrequently: true})
      .getImageData(0, 0, canvas.width, canvas.height).data;
    for (var i = 0; i < d.length; i += 12) {  // every third pixel: enough to see a glyph
      if (d[i + 3] === 0) { continue; }
      var hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
      if (lo < 245) { painted++; }
      if (hi - lo > 40) { colour++; }
    }
    return [painted, colour];
  }
  function record() {
    var plots = [];
    walk(document, function (el) {
      var cls = typeof el.className === "string" ? el.className : "";
      if (/(^|\\s)bk-Figure(\\s|$)/.test(cls) || /(^|\\s)bk-Plot(\\s|$)/.test(cls)) {
        var painted = 0, colour = 0, canvases = 0;
        if (el.shadowRoot) {
          walk(el.shadowRoot, function (c) {
            if (c.tagName !== "CANVAS") { return; }
            var p = pixels(c);
            canvases++; painted += p[0]; colour += p[1];
          });
        }
        var r = el.getBoundingClientRect();
        plots.push({kind: "bokeh", width: Math.round(r.width), height: Math.round(r.height),
                    canvases: canvases, painted: painted, colour: colour});
      } else if (el.tagName === "svg" && !(el.parentNode && el.parentNode.closest &&
                 el.parentNode.closest("svg"))) {
        var shapes = el.querySelectorAll("path,rect,circle,line,polyline,polygon,ellipse").length;
        var box = el.getBoundingClientRect();
        if (box.width >= 100 && box.height >= 60) {
          plots.push({kind: "svg", width: Math.round(box.width), height: Math.round(box.height),
                      shapes: shapes});
        }
      }
    });
    var bokeh = null;
    if (window.Bokeh && window.Bokeh.documents) {
      var figures = [];
      window.Bokeh.documents.forEach(function (d) {
        d.all_models.forEach(function (m) {
          if (!m.renderers || m.x_range === undefined) { return; }
          var rows = 0;
          m.renderers.forEach(function (r) {
            var source = r.data_source;
            if (source && source.get_length) { rows += source.get_length() || 0; }
          });
          figures.push({title: m.title && m.title.text ? m.title.text : "", rows: rows});
        });
      });
      bokeh = {version: window.Bokeh.version, documents: window.Bokeh.documents.length,
               idle: window.Bokeh.documents.every(function (d) { return d.is_idle; }),
               figures: figures};
    }
    document.documentElement.setAttribute("data-probe-plots", JSON.stringify(plots));
    document.documentElement.setAttribute("data-probe-bokeh", JSON.stringify(bokeh));
  }
  [1000, 4000, 9000, 14000].forEach(function (ms) {  // of the 15 s virtual-time budget
    setTimeout(function () { try { record(); } catch (e) { note("probe " + e); } }, ms);
  });
})();</script>"""

_CONSOLE = re.compile(r':CONSOLE[^\]]*\] "(?P<text>.*)", source: (?P<source>\S*)')
#: console lines that mean something did not work (Chromium does not log a console level)
_CONSOLE_ERRORS = re.compile(r"^Uncaught|Failed to load resource|net::ERR_")
#: CSS that makes a page load something from elsewhere
_CSS_EXTERNAL = re.compile(
    r"""@import\s+(?:url\()?["']?(?P<imp>(?:https?:)?//[^"')\s]+)"""
    r"""|url\(\s*["']?(?P<url>(?:https?:)?//[^"')\s]+)""",
    re.IGNORECASE,
)
#: tag -> the attribute through which it loads something
_LOADS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
          "embed": "src", "object": "data", "video": "src", "audio": "src"}  # fmt: skip


class _Loads(HTMLParser):
    """The URLs a page's tags load (a link's icon is not needed to render: not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "link" and "icon" in (named.get("rel") or "").lower().split():
            return
        value = named.get(_LOADS.get(tag, ""))
        if value and re.match(r"(?:https?:)?//", value.strip(), re.IGNORECASE):
            self.urls.append(value.strip())


@dataclass
class Page:
    """What headless Chromium made of one HTML file.

    Attributes
    ----------
    path : Path
        The page.
    dom : str
        The serialised DOM after its scripts ran (``--dump-dom``), probe attributes removed.
    screenshot : Path
        PNG of the first window (``size``) of the page.
    errors : list of str
        Script errors: uncaught exceptions, rejected promises, ``console.error`` calls,
        resources that failed to load.
    console : list of str
        Every console message, as Chromium logged it.
    plots : list of dict
        One per plot: ``kind`` (``bokeh`` or ``svg``), ``width`` and ``height`` in CSS pixels;
        Bokeh: ``canvases``, ``painted`` (pixels not white or transparent) and ``colour``
        (pixels with a hue: data glyphs, not the grey axes and black text); SVG: ``shapes``.
    bokeh : dict or None
        When BokehJS loaded: ``version``, ``documents``, ``idle`` (all documents rendered) and
        ``figures``, one ``{"title", "rows"}`` per plot model of the documents (``rows``: the
        data rows its glyphs hold; a hidden tab's plots count too).
    external : list of str
        URLs outside the file that the page's tags or CSS refer to.
    """

    path: Path
    dom: str
    screenshot: Path
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    plots: list[dict[str, Any]] = field(default_factory=list)
    bokeh: dict[str, Any] | None = None
    external: list[str] = field(default_factory=list)

    @property
    def drawn(self) -> list[dict[str, Any]]:
        """The plots that drew data in colour (Bokeh) or hold shapes (SVG)."""
        return [
            p
            for p in self.plots
            if p["width"] > 0
            and p["height"] > 0
            and (p.get("colour", 0) > 0 if p["kind"] == "bokeh" else p.get("shapes", 0) > 0)
        ]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "no Chromium on this machine"
    done = subprocess.run(
        [CHROMIUM, *_FLAGS, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def external_references(text: str) -> list[str]:
    """URLs outside the page that its tags (``script``, ``link`` other than an icon, ``img``,
    ``iframe``...) or CSS load.

    Links a reader clicks (``<a href>``), a favicon and URLs inside script text are not loads
    and are not listed.
    """
    parser = _Loads()
    parser.feed(text)
    css = {m.group("imp") or m.group("url") for m in _CSS_EXTERNAL.finditer(text)}
    return sorted({*parser.urls, *css})


def _attribute(dom: str, name: str) -> Any:
    m = re.search(rf'\b{name}="([^"]*)"', dom)
    if m is None:
        return None
    raw = m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(raw.replace("&amp;", "&"))


def open_page(
    page: Path,
    screenshot: Path,
    *,
    size: tuple[int, int] = (1400, 4000),
    timeout: float = 120,
) -> Page:
    """Open ``page`` (a local HTML file) in headless Chromium, offline; see :class:`Page`.

    The DOM run opens a copy of the page with a probe script first in its ``<head>``, written
    beside the screenshot (the page itself is not changed); the screenshot run opens the page
    as it is.

    Parameters
    ----------
    page : Path
        The HTML file.
    screenshot : Path
        Where the PNG goes (its folder also receives ``<name>.probe.html``).
    size : (int, int)
        Window width and height in pixels.
    timeout : float
        Seconds allowed for each of the two browser runs.

    Returns
    -------
    Page
    """
    page, screenshot = Path(page).resolve(), Path(screenshot).resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    text = page.read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", text, re.IGNORECASE)
    at = head.end() if head else 0
    probe = screenshot.with_suffix(".probe.html")
    probe.write_text(text[:at] + _PROBE + text[at:], encoding="utf-8")
    window = f"--window-size={size[0]},{size[1]}"
    done = _run(["--dump-dom", window, probe.as_uri()], timeout)
    dom = done.stdout
    errors = list(_attribute(dom, "data-probe-errors") or [])
    console = []
    for line in done.stderr.splitlines():
        m = _CONSOLE.search(line)
        if m is None:
            continue
        console.append(m.group("text"))
        if _CONSOLE_ERRORS.search(m.group("text")) and m.group("text") not in errors:
            errors.append(m.group("text"))
    plots = list(_attribute(dom, "data-probe-plots") or [])
    bokeh = _attribute(dom, "data-probe-bokeh")
    dom = re.sub(r'\sdata-probe-[a-z]+="[^"]*"', "", dom)
    dom = dom.replace(_PROBE, "")
    _run([f"--screenshot={screenshot}", window, page.as_uri()], timeout)
    if not screenshot.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {screenshot}")
    return Page(
        path=page,
        dom=dom,
        screenshot=screenshot,
        errors=errors,
        console=console,
        plots=plots,
        bokeh=bokeh,
        external=external_references(text),
    )


def check_offline_page(
    page: Path,
    screenshot: Path,
    *,
    min_plots: int = 1,
    all_data: bool = False,
    size: tuple[int, int] = (1400, 4000),
    timeout: float = 120,
) -> Page:
    """Open ``page`` offline and assert what every HTML output of fraud_dask must give.

    No tag or stylesheet loads anything from outside the file; no script error; BokehJS (when
    the page uses it) finished rendering; at least ``min_plots`` plots drew data (a Bokeh
    figure with coloured pixels whose glyphs hold rows, or an inline SVG chart with shapes); a
    screenshot was taken.

    Parameters
    ----------
    page : Path
        The HTML file.
    screenshot : Path
        Where the PNG goes (put it under the test's ``tmp_path``).
    min_plots : int
        Plots that must have drawn something (and, for Bokeh, Bokeh plots whose glyphs hold
        data rows).
    all_data : bool
        Also require every Bokeh plot of the page to hold data.
    size, timeout
        As :func:`open_page`.

    Returns
    -------
    Page
        For further checks by the caller (headings in ``dom``, counts of ``plots``...).
    """
    out = open_page(page, screenshot, size=size, timeout=timeout)
    name = Path(page).name
    assert out.external == [], f"{name} loads from outside the file: {out.external}"
    assert out.errors == [], f"{name}: script errors: {out.errors}"
    if out.bokeh is not None:
        assert out.bokeh["documents"] > 0 and out.bokeh["idle"], f"{name}: Bokeh {out.bokeh}"
    drawn = out.drawn
    assert len(drawn) >= min_plots, (
        f"{name}: {len(drawn)} plot(s) drew in colour, expected at least {min_plots}: {out.plots}"
    )
    if out.bokeh is not None:
        # the coloured pixels could be a legend alone: the glyphs must also hold data
        with_data = [f for f in out.bokeh["figures"] if f["rows"] > 0]
        assert len(with_data) >= min_plots, (
            f"{name}: {len(with_data)} Bokeh plot(s) hold data, expected at least {min_plots}: "
            f"{out.bokeh['figures']}"
        )
        if all_data:
            empty = [f["title"] for f in out.bokeh["figures"] if f["rows"] == 0]
            assert empty == [], f"{name}: plots without data: {empty}"
    assert out.screenshot.stat().st_size > 10_000, f"{name}: the screenshot is blank"
    return out


def render(
    page: Path, screenshot: Path, *, size: tuple[int, int] = (1400, 4000), timeout: float = 120
) -> tuple[str, Path]:
    """Open ``page`` (a local HTML file) headless; return the DOM after its scripts ran, and
    a PNG screenshot of the first ``size`` pixels. Fails on a script error or on a reference
    to anything outside the file.

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
    out = open_page(page, screenshot, size=size, timeout=timeout)
    assert out.external == [], f"{Path(page).name} loads from outside the file: {out.external}"
    assert out.errors == [], f"{Path(page).name}: script errors: {out.errors}"
    return out.dom, out.screenshot
