#!/usr/bin/env python3
"""PyTorch through vgpu: the same workload natively and in a guest, compared.

  pytorch_check.py run --out RESULT.json     run every stage, record figures
  pytorch_check.py compare NATIVE.json VGPU.json   same results within tolerance?

Stages: device query, tensor creation, elementwise ops, reductions, fp32 and
fp16 matmuls (cuBLAS and cuBLASLt paths: mm, bmm, addmm/nn.Linear), a small
MLP trained for 200 steps, pinned memory with non-blocking copies on a side
stream, and a CUDA graph (torch.cuda.graph) replayed with new inputs. Each stage records a few numbers (sums,
norms, losses); random inputs come from seeded CPU generators so both runs
see the same data. A stage that raises is recorded with its error and the
run goes on, so one run shows everything that does not work yet.
"""
import json
import sys
import time
import traceback


def stage(results, name, fn):
    t0 = time.perf_counter()
    try:
        out = fn()
        results[name] = {"ok": True, "values": out}
        status = "ok"
    except Exception as e:  # recorded, reported, and the run goes on
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        status = "ERROR " + results[name]["error"].splitlines()[0][:300]
        traceback.print_exc()
    print(f"pytorch-check: stage {name:<14} {status} ({time.perf_counter() - t0:.2f} s)", flush=True)


def run(out_path):
    import torch

    results = {}
    dev = torch.device("cuda")

    def device_query():
        assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
        p = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info()
        print(f"pytorch-check: torch {torch.__version__}, {torch.cuda.device_count()} device(s), "
              f"{p.name}, cc {p.major}.{p.minor}, {p.multi_processor_count} SMs, "
              f"total {total >> 20} MiB, free {free >> 20} MiB", flush=True)
        return {"count": torch.cuda.device_count(), "cc": [p.major, p.minor],
                "sms": p.multi_processor_count}

    def cpu_randn(*shape, seed):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(*shape, generator=g)

    def creation():
        z = torch.zeros(1000, device=dev)
        o = torch.ones(3, 5, device=dev, dtype=torch.float16)
        a = torch.arange(0, 10000, device=dev, dtype=torch.float32)
        r = cpu_randn(4096, seed=1).to(dev)
        e = torch.empty(123, 7, device=dev).fill_(2.5)
        back = r.cpu()
        return {"zeros": z.sum().item(), "ones": o.float().sum().item(), "arange": a.sum().item(),
                "randn_roundtrip_equal": bool(torch.equal(back, cpu_randn(4096, seed=1))),
                "fill": e.sum().item()}

    def elementwise():
        x = cpu_randn(1 << 20, seed=2).to(dev)
        y = cpu_randn(1 << 20, seed=3).to(dev)
        r = {}
        r["add"] = (x + y).sum().item()
        r["mul"] = (x * y).sum().item()
        r["exp"] = torch.exp(x * 0.1).sum().item()
        r["sin"] = torch.sin(x).sum().item()
        r["relu"] = torch.relu(x).sum().item()
        r["where"] = torch.where(x > y, x, y).sum().item()
        r["half"] = (x.half() * 2).float().sum().item()
        r["inplace"] = x.clone().mul_(3).add_(1).sum().item()
        return r

    def reductions():
        x = cpu_randn(1000, 1000, seed=4).to(dev)
        return {"sum": x.sum().item(), "mean": x.mean().item(), "max": x.max().item(),
                "argmax": int(x.argmax().item()), "norm": x.norm().item(),
                "std": x.std().item(), "cumsum_last": x.flatten().cumsum(0)[-1].item(),
                "softmax_row0": torch.softmax(x, dim=1)[0].sum().item(),
                "sort_first": x[0].sort().values[0].item()}

    def matmul():
        torch.backends.cuda.matmul.allow_tf32 = False
        a = cpu_randn(512, 384, seed=5)
        b = cpu_randn(384, 256, seed=6)
        ref = (a.double() @ b.double())
        g32 = (a.to(dev) @ b.to(dev)).cpu()
        g16 = (a.to(dev).half() @ b.to(dev).half()).float().cpu()
        bias = cpu_randn(256, seed=7)
        lin = torch.nn.functional.linear(a.to(dev), b.t().contiguous().to(dev), bias.to(dev)).cpu()
        lin16 = torch.nn.functional.linear(a.to(dev).half(), b.t().contiguous().to(dev).half(),
                                           bias.to(dev).half()).float().cpu()
        ba = cpu_randn(8, 64, 32, seed=8)
        bb = cpu_randn(8, 32, 48, seed=9)
        bmm = torch.bmm(ba.to(dev), bb.to(dev)).cpu()
        bmm16 = torch.bmm(ba.to(dev).half(), bb.to(dev).half()).float().cpu()
        bref = torch.bmm(ba.double(), bb.double())
        lref = ref + bias.double()

        def err(x, r):
            return ((x.double() - r).abs().max() / r.abs().max()).item()
        return {"fp32_mm_relerr": err(g32, ref), "fp16_mm_relerr": err(g16, ref),
                "fp32_linear_relerr": err(lin, lref), "fp16_linear_relerr": err(lin16, lref),
                "fp32_bmm_relerr": err(bmm, bref), "fp16_bmm_relerr": err(bmm16, bref),
                "fp32_mm_sum": g32.sum().item()}

    def mlp():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 10)).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xs = cpu_randn(512, 64, seed=10).to(dev)
        w = cpu_randn(64, 10, seed=11).to(dev)
        ys = (xs @ w).argmax(dim=1)
        losses = {}
        for step in range(200):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xs), ys)
            loss.backward()
            opt.step()
            if step % 50 == 0 or step == 199:
                losses[f"loss_{step}"] = loss.item()
        acc = (model(xs).argmax(dim=1) == ys).float().mean().item()
        losses["accuracy"] = acc
        torch.cuda.synchronize()
        return losses

    def pinned_and_streams():
        # Pinned host memory, non-blocking copies on a side stream, events.
        src = cpu_randn(1 << 20, seed=12).pin_memory()
        s = torch.cuda.Stream()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(s):
            start.record()
            d = src.to(dev, non_blocking=True)
            d.mul_(2)
            back = torch.empty_like(src).pin_memory()
            back.copy_(d, non_blocking=True)
            end.record()
        s.synchronize()
        return {"pinned": bool(src.is_pinned()), "roundtrip_sum": back.sum().item(),
                "event_ms_nonneg": start.elapsed_time(end) >= 0}

    def cuda_graph():
        # torch.cuda.graphs: capture a small step once, replay it with new input.
        static_in = torch.zeros(4096, device=dev)
        w = cpu_randn(4096, seed=13).to(dev)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):  # warm-up on a side stream, as PyTorch asks
            for _ in range(3):
                static_out = torch.tanh(static_in * w).sum()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_out = torch.tanh(static_in * w).sum()
        outs = []
        for k in range(5):
            static_in.copy_(cpu_randn(4096, seed=20 + k).to(dev))
            g.replay()
            outs.append(static_out.item())
        return {f"replay_{k}": v for k, v in enumerate(outs)}

    for name, fn in [("device", device_query), ("creation", creation),
                     ("elementwise", elementwise), ("reductions", reductions),
                     ("matmul", matmul), ("mlp", mlp), ("pinned", pinned_and_streams),
                     ("graph", cuda_graph)]:
        stage(results, name, fn)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    bad = [n for n, r in results.items() if not r["ok"]]
    print(f"pytorch-check: {len(results) - len(bad)}/{len(results)} stages ran"
          + (f"; failed: {' '.join(bad)}" if bad else ""), flush=True)
    return 1 if bad else 0


# Relative tolerance per figure: float sums over a million elements reorder
# differently between runs of the same kernels only if launches differ, so
# tight; fp16 figures and losses after 200 steps a little looser.
def tolerance(stage_name, key):
    if key.endswith("_relerr"):
        return None  # checked against an absolute bound instead
    if stage_name == "mlp":
        return 2e-3
    return 1e-4


RELERR_BOUND = {"fp32": 1e-5, "fp16": 5e-3}


def compare(native_path, vgpu_path):
    native = json.load(open(native_path))
    vgpu = json.load(open(vgpu_path))
    failures = 0
    for name in native:
        n, v = native[name], vgpu.get(name, {"ok": False, "error": "missing"})
        if not n["ok"]:
            print(f"pytorch-check: {name:<12} native FAILED ({n['error'][:200]}); not compared")
            continue
        if not v["ok"]:
            print(f"pytorch-check: {name:<12} FAIL through vgpu: {v['error'][:300]}")
            failures += 1
            continue
        for key, nv in n["values"].items():
            vv = v["values"].get(key)
            ok = True
            if isinstance(nv, bool) or isinstance(nv, (list, str)) or isinstance(nv, int):
                ok = nv == vv
            else:
                tol = tolerance(name, key)
                if tol is None:
                    bound = RELERR_BOUND["fp16" if key.startswith("fp16") else "fp32"]
                    ok = vv is not None and vv <= bound
                else:
                    ok = vv is not None and abs(vv - nv) <= tol * max(1.0, abs(nv))
            print(f"pytorch-check: {name:<12} {key:<22} native {nv!s:<24} vgpu {vv!s:<24} "
                  f"{'ok' if ok else 'MISMATCH'}")
            failures += 0 if ok else 1
    print("pytorch-check: " + ("PASS: same results" if failures == 0 else f"FAIL: {failures} mismatch(es)"))
    return 1 if failures else 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "run" and argv[1] == "--out":
        return run(argv[2])
    if len(argv) == 3 and argv[0] == "compare":
        return compare(argv[1], argv[2])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
