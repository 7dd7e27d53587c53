"""The bad-input battery of issue 18: each case run in a fresh process, with a time limit, and
classified. Run it from a checkout's root (it runs *that* checkout's ghfeat):

    python benchmarks/reliability_battery.py [--only KIND] [--json out.json] [--timeout 40]

Kinds of case (what the issue filed them under) and how each result is classified:

* ``clear``    a refusal that was due came as one clear line (exit 2; no traceback);
* ``valid``    a valid input worked (exit 0, and its check passed);
* ``crash``    a traceback, "internal error", a signal (SIGABRT...) or another exit status;
* ``silent``   exit 0 (or a wrong result) where a refusal was due;
* ``files``    a failure that left a partial file behind, or wrote into the installed package;
* ``hang``     still running at the time limit;
* ``contradicts``  a refusal whose message contradicts itself or suggests what cannot work.

Full-disk cases need unprivileged mount namespaces (``unshare -rm``; they are skipped otherwise).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path.cwd()
PY = sys.executable


@dataclass
class Case:
    kind: str                      # files | hang | silent | crash | message (the heading)
    name: str
    argv: list                     # a command line (python -m ghfeat ...), or ["-c", code] / ["examples/x.py", ...]
    expect: str = "refuse"         # refuse | valid
    env: dict = field(default_factory=dict)
    full_disk: bool = False        # run on a full tmpfs mounted at {disk}
    check: object = None           # f(result, tmp) -> classification or None
    module: bool = True            # argv goes after `python -m ghfeat`
    setup: object = None           # f(tmp) before the run


_PROGRESS = re.compile(r"\d+%\|.*\|.*\[.*\]")          # a tqdm bar (stderr is not a terminal here)


def _one_line(err: str) -> bool:
    """One line of error: progress bars, warnings and "!!" notices aside."""
    lines = [line for line in err.strip().splitlines()
             if line.strip() and not line.startswith(("!!", "  warnings.warn")) and "Warning" not in line
             and not _PROGRESS.search(line)]
    return len(lines) == 1


def _api_refusal(err: str) -> bool:
    """A Python API call (``-c`` cases) refused by ghfeat itself: the traceback's last frame is in
    ghfeat's code and its last line is an exception with a message (the API's way to say no; the
    CLI's is exit 2 and one line)."""
    frames = re.findall(r'File "([^"]+)"', err)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return bool(frames) and "/ghfeat/" in frames[-1] and re.match(r"[\w.]*(Error|Exception): .{20,}", last) is not None


# -- a local mirror that misbehaves -----------------------------------------------------------------
class Mirror:
    """Serves any file under ``/<mode>/``: ``trickle`` (1 byte/s of an announced 10 MB), ``silent``
    (headers, then nothing), ``badlength`` (``Content-Length: abc``), ``drop`` (closes at once);
    any other first path segment serves 4 bytes."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                mode = self.path.lstrip("/").split("/", 1)[0]        # /<mode>/<file>
                if mode == "drop":
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", {"trickle": "10000000", "badlength": "abc"}.get(mode, "4"))
                self.end_headers()
                if mode == "trickle":
                    for _ in range(600):
                        try:
                            self.wfile.write(b"x")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(1.0)
                elif mode == "silent":
                    time.sleep(600)
                else:
                    self.wfile.write(b"abcd")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fixtures written into the case's temporary folder ----------------------------------------------
FIXTURES = textwrap.dedent(r'''
    import json, sys, numpy as np, torch
    from pathlib import Path
    from PIL import Image
    tmp = Path(sys.argv[1])
    (tmp / "digits").mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(tmp / "digits" / f"{i}.png")
    (tmp / "one").mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp / "one" / "a.png")
    (tmp / "loop").mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp / "loop" / "a.png")
    (tmp / "loop" / "sub").symlink_to(".", target_is_directory=True)
    np.save(tmp / "d2.npy", np.ones((2, 32), np.float32))
    import signal
    class Obj: pass
    torch.save({"x": signal.Signals.SIGINT}, tmp / "obj.pt")
    import ghfeat
    from ghfeat.pretrained import install_converted, sha256_file
    from safetensors.torch import save_file
    g = ghfeat.create_generator("stylegan-tiny32")
    # a genforce .pth of a tiny generator
    sys.path.insert(0, str(Path.cwd() / "tests"))
    from _official_fixtures import TinyConfig, write_genforce_pth, write_stylegan_pkl
    s = write_stylegan_pkl(tmp / "stylegan-tiny-32.pkl", TinyConfig(), seed=3)
    write_genforce_pth(tmp / "tiny.pth", s)
    # a cache whose mnist-like encoder holds NaN, manifest updated to match
    enc = ghfeat.create_encoder("tiny32")
    install_converted("encoder", "ffhq256", enc, tmp / "src.pkl", root=tmp / "nancache")
    folder = tmp / "nancache" / "encoder" / "ffhq256"
    st = {k: v.clone() for k, v in enc.state_dict().items()}
    k = next(k for k, v in st.items() if v.is_floating_point())
    st[k].view(-1)[0] = float("nan")
    save_file(st, str(folder / "model.safetensors"))
    m = json.loads((folder / "manifest.json").read_text())
    m["sha256"] = sha256_file(folder / "model.safetensors")
    (folder / "manifest.json").write_text(json.dumps(m))
    for name, text in (("list", "[]"), ("int", '{"file": 5}'), ("dots", '{"file": "../../x", "sha256": "' + "0" * 64 + '"}')):
        d = tmp / f"cache-{name}" / "encoder" / "ffhq256"
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(text)
    install_converted("generator", "stylegan-tiny32", g, tmp / "src.pkl", root=tmp / "pubcache")
    # synthetic MNIST (IDX)
    rng = np.random.default_rng(0)
    root = tmp / "mnist"; root.mkdir()
    for split in ("train", "t10k"):
        n = 40
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        (root / f"{split}-images-idx3-ubyte").write_bytes((0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28)) + images.tobytes())
        (root / f"{split}-labels-idx1-ubyte").write_bytes((0x801).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.tobytes())
''')

TRAIN = ["generator=stylegan-tiny32", "encoder=tiny32", "allow_untrained=true", "vgg_weights=null",
         "perceptual_weight=0", "batch_size=2", "num_workers=0", "progress=false", "num_threads=1"]
PKG = ROOT / "ghfeat"                # the package of the checkout under test


def _silent_if_ok(res, tmp):
    return "silent" if res["rc"] == 0 else None


def cases(mirror_url: str) -> list[Case]:
    dead = f"http://127.0.0.1:{_free_port()}"
    mnist_rec = ("import ghfeat, torch; x = torch.rand(2, 1, 32, 32) * 2 - 1; "
                 "g = ghfeat.create_generator('stylegan-tiny32'); "
                 "y = ghfeat.reconstruct(x, encoder='mnist32', generator=g); print('ran', tuple(y.shape))")
    loop_len = ("import sys; from ghfeat.data import make_dataset; n = len(make_dataset(sys.argv[1] + '/loop', 32)); "
                "print(n); sys.exit(0 if n == 1 else 3)")
    c = [
        # -- files lost or damaged -------------------------------------------------------------------------
        Case("files", "extract --out on a full disk", ["extract", "{tmp}/digits", "--random-weights", "--model", "tiny32", "--out", "{disk}/f.npz"], full_disk=True),
        Case("files", "export torchscript on a full disk", ["export", "tiny32", "--random-weights", "--format", "torchscript", "--out", "{disk}/e.pt"], full_disk=True),
        Case("files", "export exported-program on a full disk", ["export", "tiny32", "--random-weights", "--format", "exported-program", "--out", "{disk}/e.pt2"], full_disk=True),
        Case("files", "convert --out on a full disk", ["convert", "{tmp}/stylegan-tiny-32.pkl", "--out", "{disk}/hub"], full_disk=True),
        Case("files", "train --run-dir on a full disk", ["train", "encoder", "--run-dir", "{disk}/run", "data={tmp}/digits", *TRAIN, "total_steps=2"], full_disk=True),
        Case("files", "edit --out on a full disk", ["edit", "{tmp}/digits/0.png", "--levels", "1", "--random-weights", "--model", "tiny32", "--out", "{disk}/e.png"], full_disk=True),
        Case("files", "demo --out on a full disk", ["demo", "--out", "{disk}/demo"], full_disk=True),
        Case("files", "extract --out into the installed package", ["extract", "{tmp}/digits", "--random-weights", "--model", "tiny32", "--out", f"{PKG}/assets/battery.npz"]),
        Case("files", "export --out into the installed package", ["export", "tiny32", "--random-weights", "--format", "torchscript", "--out", f"{PKG}/assets/battery.pt"]),
        Case("files", "convert --out into the installed package", ["convert", "{tmp}/stylegan-tiny-32.pkl", "--out", f"{PKG}/assets/battery"]),
        # -- hang -----------------------------------------------------------------------------------------------
        Case("hang", "download from a mirror trickling 1 byte/s", ["download", "ffhq256", "--mirror", mirror_url + "/trickle"], env={"GHFEAT_CACHE": "{tmp}/dl", "GHFEAT_DOWNLOAD_STALL_SECONDS": "3"}),
        Case("hang", "download from a mirror that goes silent", ["download", "ffhq256", "--mirror", mirror_url + "/silent"], env={"GHFEAT_CACHE": "{tmp}/dl", "GHFEAT_DOWNLOAD_STALL_SECONDS": "3"}),
        # -- silent -----------------------------------------------------------------------------------------------
        Case("silent", "reconstruct with another generator of the same code widths", ["-c", mnist_rec], module=False),
        Case("silent", "extract with NaN weights in the cache", ["extract", "{tmp}/digits", "--model", "ffhq256", "--resize", "--out", "{tmp}/nan.npz"], env={"GHFEAT_CACHE": "{tmp}/nancache"}),
        Case("silent", "convert --genforce-kwargs truncation_psi NaN", ["convert", "{tmp}/tiny.pth", "--out", "{tmp}/o1", "--genforce-kwargs", '{"truncation_psi": NaN}']),
        Case("silent", "convert --genforce-kwargs mapping_lr_mul Infinity", ["convert", "{tmp}/tiny.pth", "--out", "{tmp}/o2", "--genforce-kwargs", '{"mapping_lr_mul": Infinity}']),
        Case("silent", "convert --genforce-kwargs truncation_layers -1", ["convert", "{tmp}/tiny.pth", "--out", "{tmp}/o3", "--genforce-kwargs", '{"truncation_layers": -1}']),
        Case("silent", "convert --genforce-kwargs mapping_lr_mul 0", ["convert", "{tmp}/tiny.pth", "--out", "{tmp}/o4", "--genforce-kwargs", '{"mapping_lr_mul": 0}']),
        Case("silent", "train --max-steps -3", ["train", "encoder", "--run-dir", "{tmp}/ms", "--max-steps", "-3", "data={tmp}/digits", *TRAIN]),
        Case("silent", "train --max-steps 0", ["train", "encoder", "--run-dir", "{tmp}/ms0", "--max-steps", "0", "data={tmp}/digits", *TRAIN]),
        Case("silent", "data folder with a symlink loop (sub -> .)", ["-c", loop_len, "{tmp}"], module=False, expect="valid"),
        Case("silent", "edit --direction with a 2-D array", ["edit", "{tmp}/digits/0.png", "--levels", "1", "--random-weights", "--model", "tiny32", "--direction", "{tmp}/d2.npy", "--out", "{tmp}/e2.png"]),
        Case("silent", "train generator_kwargs with a NaN multiplier", ["train", "generator", "--run-dir", "{tmp}/gk", "data={tmp}/digits", "generator=stylegan-tiny32", "batch_size=2", "num_workers=0", "progress=false", "total_steps=1", 'generator_kwargs={"mapping_lr_mul": NaN}']),
        Case("silent", "create_generator(truncation_psi=nan)", ["-c", "import ghfeat; ghfeat.create_generator('stylegan-tiny32', truncation_psi=float('nan')); print('built')"], module=False),
        Case("silent", "fewshot example: more shots than digits", ["examples/fewshot_segmentation.py", "--data", "{tmp}/mnist", "--random-weights", "--model", "tiny32", "--shots", "100", "--limit", "2", "--repeats", "1", "--steps", "1", "--kinds", "pixels"], module=False),
        # -- crashes -----------------------------------------------------------------------------------------------
        Case("crash", "cache manifest []", ["extract", "{tmp}/digits", "--model", "ffhq256", "--out", "{tmp}/m1.npz"], env={"GHFEAT_CACHE": "{tmp}/cache-list"}),
        Case("crash", "cache manifest {\"file\": 5}", ["extract", "{tmp}/digits", "--model", "ffhq256", "--out", "{tmp}/m2.npz"], env={"GHFEAT_CACHE": "{tmp}/cache-int"}),
        Case("crash", "cache manifest file ../../x", ["extract", "{tmp}/digits", "--model", "ffhq256", "--out", "{tmp}/m3.npz"], env={"GHFEAT_CACHE": "{tmp}/cache-dots"}),
        Case("crash", "download: Content-Length abc", ["download", "ffhq256", "--mirror", mirror_url + "/badlength"], env={"GHFEAT_CACHE": "{tmp}/dl2"}),
        Case("crash", "edit --direction: a .pt refused by weights_only", ["edit", "{tmp}/digits/0.png", "--levels", "1", "--random-weights", "--model", "tiny32", "--direction", "{tmp}/obj.pt", "--out", "{tmp}/e3.png"]),
        Case("crash", "publish to an unreachable endpoint", ["publish", "stylegan-tiny32", "me/x"], env={"GHFEAT_CACHE": "{tmp}/pubcache", "HF_ENDPOINT": dead, "HF_TOKEN": "hf_x"}),
        Case("crash", "train eval_n=1 (fails at the first evaluation)", ["train", "generator", "--run-dir", "{tmp}/ev", "data={tmp}/digits", "generator=stylegan-tiny32", "batch_size=2", "num_workers=0", "progress=false", "total_steps=2", "eval_every=1", "eval_n=1"]),
        Case("crash", "train eval_every on a 1-image folder (fails at the first evaluation)", ["train", "generator", "--run-dir", "{tmp}/ev2", "data={tmp}/one", "generator=stylegan-tiny32", "batch_size=2", "num_workers=0", "progress=false", "total_steps=2", "eval_every=1", "eval_n=8"]),
        Case("crash", "two trainers in one run folder", ["-c", "TWO_TRAINERS"], module=False),
        Case("crash", "example --device cuda without CUDA", ["examples/extract_features.py", "{tmp}/digits", "--random-weights", "--model", "tiny32", "--device", "cuda", "--out", "{tmp}/x.npz"], module=False),
        Case("crash", "example linear_probe --limit 0", ["examples/linear_probe.py", "--data", "{tmp}/mnist", "--random-weights", "--model", "tiny32", "--limit", "0"], module=False),
        Case("crash", "example retrieval --out unwritable (checked before the work)", ["examples/retrieval.py", "--data", "{tmp}/mnist", "--random-weights", "--model", "tiny32", "--out", "{tmp}/digits/0.png/r.png"], module=False),
        Case("crash", "example editing_directions --n-fit 1", ["examples/editing_directions.py", "--data", "{tmp}/mnist", "--random-weights", "--model", "tiny32", "--n-fit", "1", "--out-dir", "{tmp}/ed"], module=False),
        Case("crash", "example extract_features --batch-size 0", ["examples/extract_features.py", "{tmp}/digits", "--random-weights", "--model", "tiny32", "--batch-size", "0", "--out", "{tmp}/x2.npz"], module=False),
        Case("crash", "example finetune_classifier --lr nan", ["examples/finetune_classifier.py", "--data", "{tmp}/mnist", "--random-weights", "--model", "tiny32", "--lr", "nan", "--labels", "10", "--modes", "frozen", "--steps", "1"], module=False),
        Case("crash", "example style_mixing --generator another one", ["examples/style_mixing.py", "--random-weights", "--encoder", "tiny32", "--generator", "stylegan-mnist32", "--out", "{tmp}/sm.png"], module=False),
        Case("crash", "download with GHFEAT_DOWNLOAD_STALL_SECONDS=abc", ["download", "ffhq256", "--mirror", mirror_url + "/ok"], env={"GHFEAT_CACHE": "{tmp}/dl3", "GHFEAT_DOWNLOAD_STALL_SECONDS": "abc"}),
        # -- messages that contradict themselves -------------------------------------------------------------------
        Case("message", "download ffhq256 --kind generator", ["download", "ffhq256", "--kind", "generator"], env={"GHFEAT_CACHE": "{tmp}/dl4"},
             check=lambda r, t: "contradicts" if "no official entry 'ffhq256'" in r["err"] else None),
        Case("message", "publish mnist32", ["publish", "mnist32", "me/x"], env={"GHFEAT_CACHE": "{tmp}/dl5"},
             check=lambda r, t: "contradicts" if "ghfeat download mnist32" in r["err"] else None),
        Case("message", "failed download says a .part is kept", ["download", "ffhq256", "--mirror", mirror_url + "/drop"], env={"GHFEAT_CACHE": "{tmp}/dl6"},
             check=lambda r, t: "contradicts" if ".part is kept" in r["err"] else None),
        # -- valid inputs that must keep working ----------------------------------------------------------------------
        Case("valid", "extract a folder", ["extract", "{tmp}/digits", "--random-weights", "--model", "tiny32", "--out", "{tmp}/ok.npz"], expect="valid"),
        Case("valid", "export torchscript", ["export", "tiny32", "--random-weights", "--format", "torchscript", "--out", "{tmp}/ok.pt"], expect="valid"),
        Case("valid", "train 2 steps", ["train", "encoder", "--run-dir", "{tmp}/okrun", "data={tmp}/digits", *TRAIN, "total_steps=2"], expect="valid"),
        Case("valid", "reconstruct with the paired generator", ["-c", "import ghfeat, torch; x = torch.rand(2, 1, 32, 32) * 2 - 1; print(ghfeat.reconstruct(x).shape)"], module=False, expect="valid"),
    ]
    return c


TWO_TRAINERS = textwrap.dedent(r'''
    import os, subprocess, sys, time
    from pathlib import Path
    tmp = Path(sys.argv[1]); run = tmp / "two"
    args = ["train", "encoder", "--run-dir", str(run), f"data={tmp}/digits", *%r]
    first = subprocess.Popen([sys.executable, "-m", "ghfeat", *args, "total_steps=100000", "log_every=1", "ckpt_every=1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.time()
    while not (run / "metrics.jsonl").is_file() and time.time() - t < 120:
        time.sleep(0.2)
    second = subprocess.run([sys.executable, "-m", "ghfeat", *args, "total_steps=3", "ckpt_every=1", "--resume", "auto"],
                            capture_output=True, text=True)
    first.kill(); first.wait()
    sys.stderr.write(second.stderr); sys.exit(second.returncode)
''') % (TRAIN,)


def run_case(case: Case, tmp: Path, timeout: float, have_ns: bool) -> dict:
    disk = tmp / "disk"
    fmt = lambda s: s.replace("{tmp}", str(tmp)).replace("{disk}", str(disk))   # noqa: E731
    argv = [fmt(a) for a in case.argv]
    if argv[:2] == ["-c", "TWO_TRAINERS"]:
        argv = ["-c", TWO_TRAINERS, str(tmp)]
    cmd = [PY, "-m", "ghfeat", *argv] if case.module else [PY, *argv]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               **{k: fmt(v) for k, v in case.env.items()})
    env.setdefault("GHFEAT_CACHE", str(tmp / "cache"))
    pkg_before = {p: p.stat().st_mtime_ns for p in PKG.rglob("*") if p.is_file()}
    if case.full_disk:
        if not have_ns:
            return {"kind": case.kind, "name": case.name, "result": "skipped"}
        disk.mkdir(exist_ok=True)
        script = (f'mount -t tmpfs -o size=256k tmpfs {disk} && (dd if=/dev/zero of={disk}/fill bs=4k 2>/dev/null; true) && '
                  f'"$@"; rc=$?; find {disk} -type f ! -name fill > {tmp}/left.txt; exit $rc')
        cmd = ["unshare", "-rm", "sh", "-c", script, "sh", *cmd]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = None, "", (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    res = {"kind": case.kind, "name": case.name, "rc": rc, "seconds": round(time.monotonic() - t0, 1),
           "err": err.strip().splitlines()[-1][:300] if err.strip() else ""}
    left = (tmp / "left.txt").read_text().split() if case.full_disk and (tmp / "left.txt").is_file() else []
    pkg_changed = [str(p) for p in PKG.rglob("*") if p.is_file() and pkg_before.get(p) != p.stat().st_mtime_ns]
    for p in pkg_changed:            # undo the damage so that the next case starts clean
        if p not in map(str, pkg_before):
            Path(p).unlink()
    full_err = err
    if rc is None:
        result = "hang"
    elif pkg_changed or left:
        result = "files"
    elif case.argv[:1] == ["-c"] and case.expect != "valid" and rc == 1 and _api_refusal(full_err):
        result = "clear"
    elif "Traceback" in full_err or "internal error" in full_err or rc not in (0, 2, 3):
        result = "crash"
    elif case.expect == "valid":
        result = "valid" if rc == 0 else ("silent" if rc == 3 else "clear")
    elif rc == 0:
        result = "silent"
    else:
        result = "clear" if _one_line(full_err) else "crash"
    if case.check is not None and result == "clear":
        result = case.check({"rc": rc, "err": full_err, "out": out}, tmp) or result
    res["result"] = result
    if left:
        res["left"] = left
    if pkg_changed:
        res["package_written"] = pkg_changed
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="run the cases of this kind only")
    ap.add_argument("--timeout", type=float, default=40.0, help="seconds before a case counts as a hang")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    have_ns = shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0
    mirror = Mirror()
    work = Path(tempfile.mkdtemp(prefix="ghfeat-battery-"))
    base = work / "fixtures"
    base.mkdir()
    subprocess.run([PY, "-c", FIXTURES, str(base)], check=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    results = []
    for i, case in enumerate(c for c in cases(mirror.url) if args.only in (None, c.kind)):
        tmp = work / f"case{i}"
        shutil.copytree(base, tmp, symlinks=True)
        r = run_case(case, tmp, args.timeout, have_ns)
        results.append(r)
        print(f"{r['result']:<12} {r['kind']:<8} {r['name']}  ({r.get('seconds', 0)} s) {r.get('err', '')[:160]}",
              flush=True)
    counts = {}
    for r in results:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    print(f"\n{len(results)} cases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts, "results": results}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
