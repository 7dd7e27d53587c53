"""The docs run as written: every ```python and ```bash block of README.md and docs/*.md.

- The ``python`` blocks of a page run in order in one namespace (a later block may use what an
  earlier one made), in a fresh folder, offline, with a fresh ghfeat cache.
- The ``bash`` blocks of a page run in order, command by command (``\\`` continuations joined, comments
  dropped, ``A && B`` split, ``VAR=value`` set for later ``$VAR``) in one fresh folder that holds a
  link to ``examples/``: ``ghfeat ...`` / ``python -m ghfeat ...`` through ``ghfeat.cli.main`` and
  ``python examples/X.py ...`` through the script's ``main``, in this process (no interpreter
  start per command); each must succeed. ``ghfeat download-data`` gets small fake MNIST /
  Fashion-MNIST files from a server on 127.0.0.1, so the data commands run on small data.
- ``pip install ...``, ``python -m pytest`` and ``.ci/run`` lines are not run: the environment is installed
  (tests/test_wheel.py builds, installs and runs the wheel) and this *is* the test suite.
- A block that cannot run here says why in an HTML comment on the line just above its fence:
  ``<!-- doc-test: skip network: downloads the official FFHQ file -->``. The reason is required,
  and is shown as the pytest skip reason.
The outputs are not pinned (numbers in the docs change when models are retrained): a block
passes when it runs without an error (a bash command: exit status 0).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import re
import shlex
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _helpers import fake_mnist_files

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARK = re.compile(r"<!--\s*doc-test:\s*skip\s+(.+?)\s*-->\s*$")
NOT_RUN = {"pip": "pip install: the environment is installed (tests/test_wheel.py installs the wheel)",
           "pytest": "the test suite itself"}


def blocks(page: Path):
    """``(lang, code, line, skip_reason)`` for every fenced block of ``page``."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").splitlines()
        mark = MARK.search(before[-1]) if before else None
        out.append((m.group(1), m.group(2), text[:m.start()].count("\n") + 1, mark.group(1) if mark else None))
    return out


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def commands(code: str) -> list[str]:
    """Shell commands of a bash block: continuations joined, comments and blank lines dropped,
    ``&&`` chains split."""
    joined = re.sub(r"\\\n", " ", code)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        cmd, current = [], []
        for w in words + ["&&"]:
            if w == "&&":
                if current:
                    cmd.append(current)
                current = []
            else:
                current.append(w)
        out.extend(cmd)
    return out


# -- the harness's own checks ----------------------------------------------------------------------

def test_the_harness_reads_blocks_marks_and_commands(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n```python\nx = 1\n```\n<!-- doc-test: skip network: needs the Hub -->\n"
                    "```bash\nghfeat list \\\n  --kind encoder   # a comment\n\nA=1 && ghfeat demo\n```\n")
    (py, code, line, skip), (sh, code2, _, skip2) = blocks(page)
    assert (py, code, line, skip) == ("python", "x = 1\n", 2, None)
    assert sh == "bash" and skip2 == "network: needs the Hub"
    assert commands(code2) == [["ghfeat", "list", "--kind", "encoder"], ["A=1"], ["ghfeat", "demo"]]


def test_every_page_has_blocks_and_every_mark_has_a_reason():
    found = [(p, b) for p in PAGES for b in blocks(p)]
    assert any(b[0] == "python" for _, b in found) and any(b[0] == "bash" for _, b in found)
    for page in PAGES:                         # a mark that is not on a fence's line is a typo
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if "doc-test" in line:
                assert MARK.search(line) and i + 1 < len(lines) and lines[i + 1].startswith("```"), \
                    f"{_rel(page)}:{i + 1}: a doc-test mark must be `<!-- doc-test: skip REASON -->` just above a fence"


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture
def docs_env(tmp_path, monkeypatch):
    """A fresh folder, offline, fresh caches; ghfeat's model cache forgotten afterwards."""
    from ghfeat.api import clear_model_cache
    for var in ("GHFEAT_OFFICIAL_MIRROR", "GHFEAT_DATA_MIRROR", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("GHFEAT_OFFLINE", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "examples").symlink_to(ROOT / "examples")
    yield work
    clear_model_cache()




@pytest.fixture
def fake_data_server(tmp_path, monkeypatch):
    """MNIST and Fashion-MNIST stand-ins (64 images a split) on 127.0.0.1, with their sha256 pinned
    in place of the real ones, so ``ghfeat download-data`` runs for real on small files."""
    from ghfeat import data_download

    site = tmp_path / "site"
    datasets = dict(data_download.DATASETS)
    for seed, (name, (tv, _, _)) in enumerate(data_download.DATASETS.items()):
        (site / name).mkdir(parents=True)
        files = fake_mnist_files(64, seed, gz=True)
        for file, data in files.items():
            (site / name / file).write_bytes(data)
        datasets[name] = (tv, None, {f: hashlib.sha256(d).hexdigest() for f, d in files.items()})
    handler = partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                      directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    for name, (tv, _, sums) in list(datasets.items()):
        datasets[name] = (tv, (f"{url}/{name}/",), sums)
    monkeypatch.setattr(data_download, "DATASETS", datasets)
    monkeypatch.delenv("GHFEAT_OFFLINE", raising=False)      # the fake server is reachable
    yield url
    httpd.shutdown()
    httpd.server_close()


# -- python blocks ----------------------------------------------------------------------------------

PY_PAGES = [p for p in PAGES if any(b[0] == "python" for b in blocks(p))]


@pytest.mark.parametrize("page", PY_PAGES, ids=_rel)
def test_python_blocks_run(page, docs_env):
    namespace: dict = {"__name__": "__doc__"}
    ran, skipped = 0, []
    for lang, code, line, skip in blocks(page):
        if lang != "python":
            continue
        if skip:
            skipped.append(f"{_rel(page)}:{line}: {skip}")
            continue
        try:
            exec(compile(code, f"{_rel(page)}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"the python block at {_rel(page)}:{line} fails: {type(exc).__name__}: {exc}") from exc
        ran += 1
    if not ran:
        pytest.skip("; ".join(skipped))


# -- bash blocks ------------------------------------------------------------------------------------

def _example_main(name: str):
    path = ROOT / "examples" / name
    spec = importlib.util.spec_from_file_location(f"doc_example_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def run_command(words: list[str], env: dict[str, str]) -> str | None:
    """Run one command in this process; returns why it was not run, or None. Fails on an error."""
    from ghfeat.cli import main

    words = [re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env[m.group(1) or m.group(2)], w) for w in words]
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if not words:
        return None
    if words[0] == "pip":
        return NOT_RUN["pip"]
    if words[:3] == ["python", "-m", "pytest"] or words[0] in ("pytest", ".ci/run"):
        return NOT_RUN["pytest"]
    if words[:3] == ["python", "-m", "ghfeat"]:
        words = ["ghfeat"] + words[3:]
    out = io.StringIO()
    if words[0] == "ghfeat":
        with contextlib.redirect_stdout(out):
            rc = main(words[1:])
    elif words[0] == "python" and len(words) > 1 and words[1].startswith("examples/"):
        with contextlib.redirect_stdout(out):
            rc = _example_main(words[1][len("examples/"):])(words[2:])
        rc = 0 if rc is None or isinstance(rc, dict) else rc
    else:
        raise AssertionError(f"the doc harness cannot run {shlex.join(words)!r}: mark its block "
                             "`<!-- doc-test: skip REASON -->` or teach run_command")
    assert rc == 0, f"{shlex.join(words)} exited with {rc}: {out.getvalue()[-2000:]}"
    return None


# pages whose commands run example scripts (features of every image, probes, training): slow
SLOW_PAGES = {"docs/usage.md", "docs/examples.md", "docs/own-data.md"}
BASH_PAGES = [pytest.param(p, id=_rel(p), marks=[pytest.mark.slow] if _rel(p) in SLOW_PAGES else [])
              for p in PAGES if any(b[0] in ("bash", "sh", "shell") for b in blocks(p))]


@pytest.mark.parametrize("page", BASH_PAGES)
def test_bash_blocks_run(page, docs_env, fake_data_server):
    env: dict[str, str] = {}
    ran, not_run = 0, []
    for lang, code, line, skip in blocks(page):
        if lang not in ("bash", "sh", "shell"):
            continue
        if skip:
            not_run.append(f"{_rel(page)}:{line}: {skip}")
            continue
        for words in commands(code):
            why = run_command(words, env)
            if why:
                not_run.append(f"{_rel(page)}:{line}: {why}")
            else:
                ran += 1
    if not ran:
        pytest.skip("; ".join(not_run))
