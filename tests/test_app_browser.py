"""``ghfeat app`` in a real browser: the app on 127.0.0.1, headless Chromium driven through upload ->
reconstruct -> mix -> edit, the images that come back checked, one screenshot per view.

Needs the extra (``pip install "ghfeat[app]"``), Selenium, and Debian's ``chromium`` +
``chromium-driver`` (nothing downloads a browser); skipped with its reason otherwise.

    GHFEAT_APP_SHOTS=docs/img python -m pytest tests/test_app_browser.py -s    # refresh docs/app.md's pictures

``-s`` prints the measured latencies (slider change -> new image in the page); with
``GHFEAT_APP_SHOTS`` they are also written to ``app_latency.json`` there.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import statistics
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason='the app extra is not installed (pip install "ghfeat[app]")')
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow,                                  # a browser session: about 35 s
              pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no system Chromium + chromedriver "
                                 "(apt-get install chromium chromium-driver)"),
              pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]   # pandas 3 vs gradio's own code

from PIL import Image  # noqa: E402

import ghfeat  # noqa: E402
from ghfeat.app import Explorer, load_models, page_title, serve  # noqa: E402
from ghfeat.editing import sefa_directions  # noqa: E402

DIGITS = Path(ghfeat.__file__).parent / "assets" / "mnist_test_digits.png"
TIMEOUT = float(os.environ.get("GHFEAT_APP_TEST_TIMEOUT", 120))   # generous: a niced run beside training


def _cpu_seconds(pids) -> float:
    """User + system CPU time of ``pids`` and all their descendants (from /proc; 0 elsewhere)."""
    total, seen, todo = 0.0, set(), list(pids)
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app():
    enc, gen, gname = load_models("mnist32")
    ex = Explorer(enc, gen)
    demo, url = serve(ex, host="127.0.0.1", port=_free_port(), title=page_title("mnist32", gname, ex), block=False)
    yield url, enc, gen
    demo.close()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1400", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    from selenium.webdriver.chrome.service import Service
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


# -- helpers ---------------------------------------------------------------------------------------

def _wait(cond, what: str, timeout: float = TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _src(driver, elem_id: str) -> str | None:
    return driver.execute_script(
        "const i = document.querySelector(arguments[0]); return i && i.complete && i.naturalWidth ? i.src : null;",
        f"#{elem_id} img")


def _new_src(driver, elem_id: str, old: str | None) -> str:
    return _wait(lambda: (s := _src(driver, elem_id)) and s != old and s, f"a new image in #{elem_id}")


def _pixels(url: str) -> np.ndarray:
    """The image the page shows, fetched from the app's own server (127.0.0.1) as its PNG bytes."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())))


def _text(driver, elem_id: str) -> str:
    return driver.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : '';",
                                 elem_id)


def _text_all(driver) -> str:
    return driver.execute_script("return document.body.innerText;")


def _upload(driver, elem_id: str, path: Path):
    driver.find_element("css selector", f"#{elem_id} input[type=file]").send_keys(str(path))


def _tab(driver, label: str):
    buttons = driver.find_elements("css selector", "button[role=tab]")
    next(b for b in buttons if b.text.strip() == label).click()
    time.sleep(0.2)


def _checkboxes(driver, elem_id: str):
    return driver.find_elements("css selector", f"#{elem_id} input[type=checkbox]")


def _set_checked(driver, elem_id: str, levels: set[int]):
    for k, box in enumerate(_checkboxes(driver, elem_id), start=1):
        if box.is_selected() != (k in levels):
            driver.execute_script("arguments[0].click();", box)


SET_SLIDER_AND_TIME = """
const [sel, imgSel, value, done] = arguments;
const input = document.querySelector(sel);
const old = document.querySelector(imgSel)?.src;
const t0 = performance.now();
const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
setter.call(input, String(value));
input.dispatchEvent(new Event('input', {bubbles: true}));
input.dispatchEvent(new Event('change', {bubbles: true}));
(function poll() {
  const img = document.querySelector(imgSel);
  if (img && img.src !== old && img.complete && img.naturalWidth) done(performance.now() - t0);
  else if (performance.now() - t0 > 20000) done(-1);
  else requestAnimationFrame(poll);
})();
"""


def _shot(driver, name: str, shots: Path):
    """The window as a person sees it, cropped 20 px below the last non-white row."""
    path = shots / f"app_{name}.png"
    driver.save_screenshot(str(path))
    with Image.open(path) as im:
        im = im.convert("RGB")
    rows = np.where((np.asarray(im) < 245).any(axis=(1, 2)))[0]
    if len(rows):
        im = im.crop((0, 0, im.width, min(im.height, int(rows.max()) + 20)))
    im.quantize(colors=128).save(path, optimize=True)


# -- the test --------------------------------------------------------------------------------------

def test_app_in_browser(app, browser, tmp_path):
    url, enc, gen = app
    shots = Path(os.environ.get("GHFEAT_APP_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    d = browser
    d.get(url)
    try:
        _wait(lambda: _src(d, "rec_output"), "the page to show the example's reconstruction", timeout=60)
    except AssertionError:
        d.save_screenshot(str(tmp_path / "failed.png"))
        raise AssertionError(f"page text: {_text_all(d)[:600]!r}; screenshot {tmp_path / 'failed.png'}") from None

    # uploads: a digit that is not a bundled example (test digits 2 and 5, written as files)
    strip = np.asarray(Image.open(DIGITS).convert("L"))
    files = {}
    for i in (2, 5):
        files[i] = tmp_path / f"upload_{i}.png"
        Image.fromarray(strip[:, 32 * i:32 * (i + 1)]).save(files[i])
    expected = ghfeat.reconstruct([str(files[2])], encoder=enc, generator=gen)[0, 0].numpy()   # uint8 [32, 32]

    # -- upload -> reconstruct ---------------------------------------------------------------------
    old = _src(d, "rec_output")
    _upload(d, "image_a", files[2])
    rec = _pixels(_new_src(d, "rec_output", old))
    assert rec.shape == (32, 32) and rec.dtype == np.uint8
    assert np.abs(rec.astype(int) - expected).max() <= 1          # the page shows ghfeat.reconstruct's image
    x = _pixels(_src(d, "rec_input"))
    assert np.array_equal(x, strip[:, 64:96])                     # the input as the model saw it
    err = _pixels(_src(d, "rec_error"))
    assert err.shape == (32, 32)
    assert "MSE" in _text(d, "rec_msg") and "PSNR" in _text(d, "rec_msg")
    _shot(d, "reconstruct", shots)

    # -- mix: no level from B = A's reconstruction; coarse levels from B change it ------------------
    _tab(d, "Style mixing")
    old = _wait(lambda: _src(d, "mix_b"), "B's reconstruction (the bundled example) in the new tab")
    _upload(d, "image_b", files[5])
    rec_b = _pixels(_new_src(d, "mix_b", old))
    expected_b = ghfeat.reconstruct([str(files[5])], encoder=enc, generator=gen)[0, 0].numpy()
    assert rec_b.shape == (32, 32) and np.abs(rec_b.astype(int) - expected_b).max() <= 1
    _set_checked(d, "levels_from_b", set())
    _wait(lambda: "no level from B" in _text(d, "mix_msg"), "the mix with no level from B")
    mix_none = _pixels(_wait(lambda: _src(d, "mix_output"), "the mix"))
    assert mix_none.shape == (32, 32)
    assert np.array_equal(mix_none, rec)                           # no level from B = A's reconstruction
    assert np.array_equal(_pixels(_src(d, "mix_a")), rec)
    _set_checked(d, "levels_from_b", {5, 6, 7, 8})                 # one event per tick: wait for the last
    _wait(lambda: "levels 5, 6, 7, 8 from B" in _text(d, "mix_msg"), "the mix of levels 5-8 from B")
    mixed = _pixels(_wait(lambda: _src(d, "mix_output"), "the mixed image"))
    ca, cb = (ghfeat.encode([str(files[i])], enc, progress=False).clone() for i in (2, 5))
    ca[:, :4] = cb[:, :4]                                          # levels 5..8 = generator layers 3..0
    want = ((ghfeat.decode(ca, gen, progress=False).clamp(-1, 1)[0, 0] + 1) * 127.5).round().numpy()
    assert mixed.shape == (32, 32) and np.abs(mixed.astype(int) - want).max() <= 1
    assert not np.array_equal(mixed, rec) and not np.array_equal(mixed, rec_b)
    _shot(d, "mix", shots)

    # -- edit: strength slider, latency from the change to the new image ----------------------------
    _tab(d, "Edit")
    _wait(lambda: _src(d, "edit_output"), "the edited image")
    lat = []
    driver_pid = d.service.process.pid
    cpu0 = time.process_time(), _cpu_seconds([driver_pid])
    for s in (0, 3, -3, 6, -6, 1.5, -1.5, 4.5):
        ms = d.execute_async_script(SET_SLIDER_AND_TIME, "#strength input[type=range]", "#edit_output img", s)
        assert ms > 0, f"no new image after setting the strength to {s}"
        lat.append(ms)
        if s == 0:
            zero = _pixels(_src(d, "edit_output"))
            assert np.array_equal(zero, rec)                       # strength 0 = the reconstruction
    cpu = (time.process_time() - cpu0[0]) + (_cpu_seconds([driver_pid]) - cpu0[1])   # server + browser
    _wait(lambda: "strength +4.5" in _text(d, "edit_msg"), "the edit at strength 4.5")   # not a late reply
    edited = _pixels(_wait(lambda: _src(d, "edit_output"), "the edited image"))   # SeFa #0 at level 5
    assert edited.shape == (32, 32) and not np.array_equal(edited, rec)
    codes = ghfeat.encode([str(files[2])], enc, progress=False).clone()
    codes[0, 3, :gen.style_dims[3]] += 4.5 * sefa_directions(gen, 5)[0][0]   # level 5 = layer 8 - 5 = 3
    want = ghfeat.decode(codes, gen, progress=False).clamp(-1, 1)[0, 0]
    assert np.abs(edited.astype(int) - ((want + 1) * 127.5).round().numpy()).max() <= 1
    _shot(d, "edit", shots)
    lat_sorted = sorted(lat[1:])                                   # the first one warms up
    print(f"\nslider -> new image: median {statistics.median(lat_sorted):.0f} ms, "
          f"max {max(lat_sorted):.0f} ms over {len(lat_sorted)} changes; CPU time (server + browser) "
          f"{1000 * cpu / len(lat):.0f} ms per change")

    # -- features: magnitudes plot and spatial maps --------------------------------------------------
    _tab(d, "Features")
    _wait(lambda: _src(d, "spatial"), "the spatial features in the new tab")
    ms_sp = d.execute_async_script(SET_SLIDER_AND_TIME, "#spatial_level input[type=range]", "#spatial img", 6)
    assert ms_sp > 0
    grid = _pixels(_src(d, "spatial"))
    assert grid.shape == (4 * 33 - 1, 4 * 33 - 1)                  # 16 channels of 32x32, 1 px gaps
    _wait(lambda: d.find_elements("css selector", "#magnitudes canvas, #magnitudes svg"), "the magnitudes plot")
    time.sleep(0.5)
    _shot(d, "features", shots)

    # -- bad uploads: a message in the page, no trace ------------------------------------------------
    _tab(d, "Reconstruct")
    big = tmp_path / "big.png"
    Image.fromarray(np.kron(strip[:, 64:96], np.ones((2, 2), np.uint8))).save(big)      # 64x64
    _upload(d, "image_a", big)
    msg = _wait(lambda: (t := _text(d, "rec_msg")) and "64x64" in t and t, "the wrong-size message")
    assert "Resize uploads to 32x32" in msg and "Traceback" not in d.page_source
    old = _src(d, "rec_output")
    d.execute_script("arguments[0].click();", d.find_element("css selector", "#resize input[type=checkbox]"))
    rec_big = _pixels(_new_src(d, "rec_output", old))
    assert rec_big.shape == (32, 32)
    _shot(d, "wrong_size", shots)
    junk = tmp_path / "notes.png"
    junk.write_text("this is not an image")
    _upload(d, "image_a", junk)
    msg = _wait(lambda: (t := _text(d, "rec_msg")) and "not an image" in t and t, "the not-an-image message")
    assert "notes.png" in msg and "Traceback" not in d.page_source

    if os.environ.get("GHFEAT_APP_SHOTS"):
        (shots / "app_latency.json").write_text(json.dumps(
            {"slider_to_image_ms": lat, "spatial_level_ms": ms_sp, "cpu_ms_per_change": 1000 * cpu / len(lat),
             "median_ms": statistics.median(lat_sorted), "max_ms": max(lat_sorted)}, indent=2))
