"""What the example scripts share with the ``ghfeat`` command line on bad input: a one-line error
and exit status 2 (``--debug`` for the traceback), arguments checked before any work.

    if __name__ == "__main__":
        raise SystemExit(run(main, "linear_probe.py"))

    ap = parser(__doc__)
    args = ap.parse_args(argv)
    check_args(args, device="--device", at_least={"--limit": 1}, outputs={"--json": False})
"""
from __future__ import annotations

import argparse
import math
import sys


def parser(doc: str) -> argparse.ArgumentParser:
    """An example script's parser: the docstring's first paragraph as description, and ``--help``
    showing defaults as every ``ghfeat`` subcommand does."""
    from .cli import HelpFormatter
    return argparse.ArgumentParser(description=doc.split("\n\n")[0].strip(), formatter_class=HelpFormatter)


def run(main, prog: str, argv=None) -> int:
    """Call ``main(argv)``; a user error (bad value, missing file, full disk...) prints one line
    ``<prog>: error: ...`` to stderr and returns 2, an unexpected one returns 1 with a short note."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        status = main(argv)
        return status if isinstance(status, int) else 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        from .cli import _user_error
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if _user_error(exc):
            print(f"{prog}: error: {msg}", file=sys.stderr)
            return 2
        print(f"{prog}: internal error: {type(exc).__name__}: {msg} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _flag_value(args, flag: str):
    return getattr(args, flag.lstrip("-").replace("-", "_"))


def check_args(args, *, device: str | None = None, at_least: dict | None = None, positive: tuple = (),
               outputs: dict | None = None) -> None:
    """Check parsed arguments before any work (each failure names the flag):

    * ``device``: the flag holding a device, refused when it cannot run here (``cuda`` without CUDA);
    * ``at_least``: ``{flag: minimum}`` for integer flags (None values are skipped; lists: every item);
    * ``positive``: float flags that must be finite and > 0;
    * ``outputs``: ``{flag: is_folder}``, outputs that must be writable (nothing is created).
    """
    if device is not None:
        from ._models import usable_device
        try:
            usable_device(_flag_value(args, device))
        except ValueError as exc:
            raise ValueError(f"{device}: {exc}") from None
    for flag, low in (at_least or {}).items():
        value = _flag_value(args, flag)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and v < low:
                raise ValueError(f"{flag} must be >= {low}, got {v}")
    for flag in positive:
        v = _flag_value(args, flag)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"{flag} must be a finite number > 0, got {v}")
    from ._io import check_writable
    for flag, folder in (outputs or {}).items():
        path = _flag_value(args, flag)
        if path is not None:
            check_writable(path, folder=folder, what=flag)
