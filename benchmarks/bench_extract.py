"""Throughput and FLOPs of the GH-Feat encoder vs its bare timm ResNet-50 trunk.

    python benchmarks/bench_extract.py                 # CPU fp32, batch 4, 3 timed iterations
    python benchmarks/bench_extract.py --iters 10 --batch 16 --device cuda

Measures the official 256x256 ResNet-50 GH-Feat encoder (``ffhq256`` config: trunk + extra stage +
FPN/SAM + heads, input checks included) against ``timm.create_model("resnet50")`` feature trunk on
the same batch. On CUDA it also runs bf16 autocast + channels_last. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs; convs and matmuls only).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def build_models():
    import timm
    from ghfeat.models.encoder import OFFICIAL_256_STYLE_DIMS, GHFeatEncoder

    encoder = GHFeatEncoder(style_dims=OFFICIAL_256_STYLE_DIMS, backbone="resnet50", input_size=256,
                            official_tf=True).eval()
    trunk = timm.create_model("resnet50", pretrained=False, num_classes=0, global_pool="").eval()
    return {"ghfeat encoder (ffhq256)": encoder, "timm resnet50 trunk": trunk}


def count_flops(model, x) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def throughput(model, x, iters: int, warmup: int, autocast_dtype=None) -> float:
    device = x.device.type
    ctx = (lambda: torch.autocast(device, dtype=autocast_dtype)) if autocast_dtype else torch.inference_mode
    with torch.inference_mode():
        for _ in range(warmup):
            with ctx():
                model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            with ctx():
                model(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return iters * x.shape[0] / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    torch.manual_seed(0)
    models = build_models()
    x_cpu = torch.rand(args.batch, 3, 256, 256) * 2 - 1
    flops = {name: count_flops(m, x_cpu[:1]) for name, m in models.items()}

    settings = [("fp32", None, False)]
    if device.type == "cuda":
        settings.append(("bf16+channels_last", torch.bfloat16, True))
    rows = []
    for label, dtype, channels_last in settings:
        for name, model in models.items():
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            model = model.to(device, memory_format=fmt)
            x = x_cpu.to(device).contiguous(memory_format=fmt)
            rows.append((name, label, throughput(model, x, args.iters, args.warmup, dtype)))
        for model in models.values():
            model.to("cpu", memory_format=torch.contiguous_format)

    threads = torch.get_num_threads() if device.type == "cpu" else None
    where = f"{device.type}" + (f" ({threads} threads)" if threads else f" ({torch.cuda.get_device_name()})")
    print(f"device: {where}, batch {args.batch}, {args.iters} timed iterations, input 256x256")
    print(f"{'model':28s} {'setting':20s} {'img/s':>9s} {'GFLOPs/img':>11s} {'params (M)':>11s}")
    for name, label, ips in rows:
        params = sum(p.numel() for p in models[name].parameters()) / 1e6
        print(f"{name:28s} {label:20s} {ips:9.2f} {flops[name] / 1e9:11.2f} {params:11.1f}")
    enc, trunk = list(models)
    print(f"FLOPs ratio encoder / trunk: {flops[enc] / flops[trunk]:.2f}")
    for label, _, _ in settings:
        speed = {name: ips for name, lab, ips in rows if lab == label}
        print(f"throughput ratio encoder / trunk ({label}): {speed[enc] / speed[trunk]:.2f}")


if __name__ == "__main__":
    main()
