"""backprop_core.dask on a local cluster: gradients over data larger than a worker, and the
per-step cost of synchronous data-parallel SGD. See benchmarks/README.md (Dask).

1. Gradients of a 64 -> 256 -> 256 -> 1 float32 MLP over --samples samples (2e6: X is 512 MB),
   made chunk by chunk on the workers by dask.array.random and dropped after use, each worker's
   memory limit below the whole, with 1 and then 2 single-threaded workers. Timed: making the
   data alone (a sum over it) and making it plus the gradients; the difference is the gradient
   work, and its rate (FLOP/s) feeds the scaling model.
2. Synchronous SGD on the same network: the wall time of a step of backprop_core.dask.fit with
   small and larger global batches on 2 workers, against the same step's compute alone (native,
   one thread, in this process): the difference is the per-step overhead (broadcast, tasks,
   reduction, the update here).
3. The scaling model of benchmarks/README.md evaluated with the numbers measured here.

Usage: python benchmarks/dask_bench.py [--samples 2e6] [--chunk 62500] [--memory-limit 384MiB]
       [--repeat 3] [--quick]
Needs the dask extra (pip install ".[dask]").
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import backprop_core as bc
import backprop_core.dask as bcd
import dask.array as da
import distributed
import numpy as np

DIMS = (64, 256, 256, 1)


def network(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    W = [(rng.normal(size=(o, i)) * np.sqrt(2 / i)).astype(dtype) for i, o in zip(DIMS, DIMS[1:])]
    b = [np.zeros((o, 1), dtype) for o in DIMS[1:]]
    return bc.MLP(W, b)


def parameters() -> int:
    return sum(o * i + o for i, o in zip(DIMS, DIMS[1:]))


def flops_per_sample() -> int:
    """Multiply-adds x 2 of one sample's forward and backward pass (the first layer needs no
    input gradient): the GEMM work, which dominates."""
    macs = sum(o * i for i, o in zip(DIMS, DIMS[1:]))  # forward
    macs += sum(o * i for i, o in zip(DIMS, DIMS[1:]))  # weight gradients
    macs += sum(o * i for i, o in list(zip(DIMS, DIMS[1:]))[1:])  # input gradients
    return 2 * macs


def data(samples: int, chunk: int, seed: int):
    """X (64, N) and Y (1, N) float32, each chunk made on a worker when needed."""
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((DIMS[0], samples), chunks=(DIMS[0], chunk), dtype=np.float32)
    Y = da.tanh(X[:1] - 0.5 * X[1:2]) + 0.1 * X[2:3]
    return X, Y


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gradients_run(workers: int, args) -> dict:
    with distributed.LocalCluster(
        processes=True, n_workers=workers, threads_per_worker=1,
        memory_limit=args.memory_limit, dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        model = network()
        X, Y = data(args.samples, args.chunk, seed=1)
        # warm-up: workers import backprop_core and start their pools
        bcd.gradients(model, X[:, : args.chunk * workers], Y[:, : args.chunk * workers], client)
        make = median_time(lambda: float(client.compute(X.sum() + Y.sum()).result()), args.repeat)
        cpu0 = client.run(time.process_time)
        both = median_time(lambda: bcd.gradients(model, X, Y, client), args.repeat)
        cpu1 = client.run(time.process_time)
        peak = max(v["metrics"]["memory"] for v in client.scheduler_info()["workers"].values())
    # CPU seconds each worker spent on one make + gradients run: how evenly the work splits,
    # whatever share of the cores the machine's other load left us
    cpu = sorted((cpu1[w] - cpu0[w]) / args.repeat for w in cpu0)
    return {"workers": workers, "make": make, "both": both, "grad": both - make, "peak": peak,
            "cpu": cpu}  # fmt: skip


def sgd_run(args) -> list[dict]:
    rows = []
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as client:
        for batch in args.batches:
            chunks = 2  # one chunk per worker: each worker its half of every batch
            n = batch * args.steps
            X, Y = client.persist(data(n, -(-n // chunks), seed=2))  # made on the workers
            bcd.fit(network(), X[:, :batch], Y[:, :batch], client, epochs=1)  # warm-up
            t = time.perf_counter()
            bcd.fit(network(), X, Y, client, epochs=1, batch_size=batch, shuffle=False)
            step = (time.perf_counter() - t) / args.steps
            Xn, Yn = X[:, :batch].compute(), Y[:, :batch].compute()
            # the same steps' compute, natively in this process on one thread
            before = bc.get_num_threads()
            bc.set_num_threads(1)
            m = network()
            W, b = m.weights, m.biases
            compute = median_time(
                lambda: bc.gradients(Xn[:, :batch], Yn[:, :batch], W, b), max(3, args.repeat)
            )
            bc.set_num_threads(before)
            rows.append({"batch": batch, "step": step, "compute": compute,
                         "overhead": step - compute / 2})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=float, default=2e6)
    p.add_argument("--chunk", type=int, default=62_500)
    p.add_argument("--memory-limit", default="384MiB")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="2e5 samples, 1 repeat, fewer steps")
    args = p.parse_args()
    if args.quick:
        args.samples, args.repeat, args.steps = 2e5, 1, 5
    args.samples = int(args.samples)
    args.batches = (256, 4096, 65536) if not args.quick else (256, 4096)

    gb = DIMS[0] * args.samples * 4 / 1e9
    print(f"# backprop_core.dask: {args.samples:.3g} samples, X {gb:.2f} GB float32, "
          f"chunks of {args.chunk}, worker memory limit {args.memory_limit}, "
          f"BLAS {bc._core.blas()}\n")  # fmt: skip
    runs = [gradients_run(w, args) for w in (1, 2)]
    print("| workers | make the data (s) | make + gradients (s) | gradients alone (s) | "
          "gradient GFLOP/s | CPU s per worker (make + gradients) | worker memory at the end "
          "(MB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    F = flops_per_sample() * args.samples
    for r in runs:
        cpu = ", ".join(f"{c:.1f}" for c in r["cpu"])
        print(f"| {r['workers']} | {r['make']:.2f} | {r['both']:.2f} | {r['grad']:.2f} | "
              f"{F / r['grad'] / 1e9:.1f} | {cpu} | {r['peak'] / 1e6:.0f} |")  # fmt: skip
    s_both = runs[0]["both"] / runs[1]["both"]
    s_grad = runs[0]["grad"] / runs[1]["grad"]
    s_cpu = sum(runs[0]["cpu"]) / max(runs[1]["cpu"])
    print(f"\nSpeed-up with 2 workers (wall clock): {s_both:.2f}x (make + gradients), "
          f"{s_grad:.2f}x (gradients alone). From CPU time (1 worker's total over the busier of "
          f"2), what 2 free cores would give: {s_cpu:.2f}x\n")  # fmt: skip

    rows = sgd_run(args)
    print("| global batch | step of dask.fit, 2 workers (ms) | native gradients of the batch, "
          "1 thread (ms) | overhead per step (ms) |")  # fmt: skip
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['step'] * 1e3:.1f} | {r['compute'] * 1e3:.1f} | "
              f"{r['overhead'] * 1e3:.1f} |")  # fmt: skip

    print(f"\n{scaling_model(F / runs[0]['grad'], rows[0]['overhead'])}")


def scaling_model(rate: float, t0: float, W: int = 100, task: float = 0.5e-3,
                  bandwidth: float = 1e9) -> str:  # fmt: skip
    """benchmarks/README.md's model of one synchronous step on W workers with global batch B:

    compute   B * c / (W * rate)                     each worker B / W samples
    overhead  t0 + (2 W - 3) * task + levels * (t0 / 4 + bytes / bandwidth)

    c: FLOPs per sample; rate: one worker's gradient FLOP/s (measured); t0: the step overhead
    measured with 2 workers (4 hops: broadcast, chunk tasks, one sum, the result); task: the
    scheduler's cost per extra task (Dask's documented 0.2-1 ms; 0.5 ms); levels =
    ceil(log2 W) sums in the tree, each a hop plus the gradients' bytes; the broadcast's bytes
    likewise. Returns the batch sizes from which data-parallel steps pay."""
    c, nbytes = flops_per_sample(), 4 * parameters()
    levels = math.ceil(math.log2(W))
    over = t0 + (2 * W - 3) * task + 2 * levels * (t0 / 4 + nbytes / bandwidth)
    faster = over * rate / (c * (1 - 1 / W))  # beats one worker doing the whole batch
    half = over * W * rate / c  # compute equals overhead: 50% of the ideal speed-up
    return (
        f"Scaling model, {W} workers: one worker {rate / 1e9:.1f} GFLOP/s, {c} FLOPs a sample, "
        f"{parameters()} parameters ({nbytes / 1e6:.2f} MB float32), step overhead t0 = "
        f"{t0 * 1e3:.1f} ms measured with 2 workers -> {over * 1e3:.0f} ms with {W}. Faster than "
        f"one worker from a global batch of {faster:.3g}; compute equal to the overhead (half "
        f"the ideal {W}x) at {half:.3g} ({half / W:.3g} a worker); 90% of it at {9 * half:.3g}."
    )

if __name__ == "__main__":
    main()
