"""Sweep speed: an 8-cell sweep with --workers 2 (local Ray) against --workers 1 (in-process), and Ray's overhead.

Run: python benchmarks/sweep_bench.py [--cells 8] [--sizes 18,36,600 100,256,2880] [--tasks 200]

Part 1 runs the same 8 cells (8 seeds of one regime, frozen model from the
truth, stage 1) both ways, for each size (metabolites,reactions,steps; the
last is the default regime), end to end as ``sysid sweep`` does (for Ray:
starting and stopping the local Ray included), and prints the wall time, the
sum of the cells' own seconds and the speedup. Part 2 times Ray itself: the
start of a local Ray, the first tasks (fresh workers importing sysid), no-op
tasks in bulk and one at a time, and the shutdown.

The machine may be shared: the load average and the share of all cores that
were busy (this benchmark and everything else, from /proc/stat) are printed
beside every timing.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from sysid.sweep import run_sweep, sweep_from_dict


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class Meter:
    """Wall time, load average and busy share of the cores over a block."""

    def __enter__(self):
        self.load = os.getloadavg()[0]
        self.busy, self.total = cpu_busy()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.start
        busy, total = cpu_busy()
        self.busy_share = (busy - self.busy) / max(total - self.total, 1.0)
        self.load_end = os.getloadavg()[0]

    def __str__(self) -> str:
        return f"load {self.load:.2f}->{self.load_end:.2f}, cores busy {100 * self.busy_share:.0f}%"


def sweep_spec(cells: int, size: tuple[int, int, int]):
    n_metabolites, n_reactions, n_frames = size
    return sweep_from_dict({
        "base": {"simulation": {"n_metabolites": n_metabolites, "n_reactions": n_reactions, "n_frames": n_frames}},
        "grid": {"simulation.seed": list(range(1, cells + 1))},
        "frozen": {"from_truth": True, "log_k_noise": 0.1},
    })


def timed_sweep(spec, workers: int) -> tuple[Meter, float, int]:
    with tempfile.TemporaryDirectory() as tmp, Meter() as meter:
        run_sweep(spec, Path(tmp) / "sweep", workers=workers)
        rows = list(csv.DictReader(open(Path(tmp) / "sweep" / "results.csv")))
    ok = sum(r["status"] == "ok" for r in rows)
    return meter, sum(float(r["seconds"]) for r in rows), ok


def part1(cells: int, size: tuple[int, int, int]) -> list[str]:
    lines = [f"part 1: {cells} cells of {size[0]} metabolites, {size[1]} reactions, {size[2]} steps "
             "(seeds 1-{cells}; frozen from the truth, log_k noise 0.1; stage 1)".format(cells=cells),
             f"{'workers':>8} {'wall_s':>8} {'cells_s':>8} {'ok':>4}  machine"]
    walls = {}
    for workers in (1, 2):
        meter, cell_seconds, ok = timed_sweep(sweep_spec(cells, size), workers)
        walls[workers] = meter.wall
        lines.append(f"{workers:>8} {meter.wall:>8.1f} {cell_seconds:>8.1f} {ok:>4}  {meter}")
        print(lines[-1], flush=True)
    lines.append(f"speedup --workers 2 over --workers 1: {walls[1] / walls[2]:.2f}x")
    print(lines[-1], flush=True)
    return lines


def noop(x):
    return x


def first_import(x):
    import sysid.sweep.execute  # noqa: F401  what a worker loads before its first cell

    return x


def part2(args) -> list[str]:
    import ray

    lines = ["part 2: Ray overhead (local Ray, 2 CPUs)", f"{'step':<44} {'seconds':>9}  machine"]

    def row(name: str, meter: Meter, per: int = 1) -> None:
        lines.append(f"{name:<44} {meter.wall / per:>9.4f}  {meter}")
        print(lines[-1], flush=True)

    with Meter() as m:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    row("ray.init (start a local Ray)", m)
    warm, task = ray.remote(num_cpus=1)(first_import), ray.remote(num_cpus=1)(noop)
    with Meter() as m:
        ray.get([warm.remote(i) for i in range(2)])
    row("first 2 tasks (fresh workers import sysid)", m)
    with Meter() as m:
        ray.get([task.remote(i) for i in range(args.tasks)])
    row(f"no-op task, {args.tasks} submitted at once (per task)", m, args.tasks)
    with Meter() as m:
        for i in range(args.tasks // 4):
            ray.get(task.remote(i))
    row(f"no-op task, {args.tasks // 4} one at a time (per task)", m, args.tasks // 4)
    with Meter() as m:
        ray.shutdown()
    row("ray.shutdown", m)
    return lines


def others_busy(seconds: float = 5.0) -> str:
    """Share of all cores busy while this benchmark sleeps: what the other users of the machine take."""
    with Meter() as meter:
        time.sleep(seconds)
    return f"cores busy while idle here ({seconds:g} s): {100 * meter.busy_share:.0f}%, load {meter.load:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--sizes", nargs="+", default=["18,36,600", "100,256,2880"],
                        help="metabolites,reactions,steps of each regime")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sweep.txt")
    args = parser.parse_args()
    lines = [f"{os.cpu_count()} cores; {others_busy()}"]
    print(lines[0], flush=True)
    for size in args.sizes:
        lines += part1(args.cells, tuple(int(v) for v in size.split(","))) + [""]
    lines += part2(args)
    lines.append(f"at the end: {others_busy()}")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"table written to {args.out}")


if __name__ == "__main__":
    main()
