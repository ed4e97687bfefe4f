"""Diagnosis: does ``holdout_shift``'s control group (unregistered accounts) change like the
registered accounts under the null?

    .venv/bin/python benchmarks/diagnose_holdout_reference.py [--seeds 70005,70028] [--bare]

For each null election (``--bare``: with no background intervention at all — no posting
surge, no disclosed boost) and window, at the final look: the mean share
difference-in-differences ``D`` of the unregistered accounts that fit ``σ²`` (the control)
and of the registered accounts, their sizes (log baseline exposures), the reference ``c``
fitted on the control, and the mean / spread of the registered subjects' standardised
statistic ``z = (D − c − κx)/sqrt(V)``.  Under a valid control the mean ``z`` is ≈ 0.
Prints one block per (seed, window); nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from bench_power import replay

    from detectors._holdout_look import hour_weights, look_arrays

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="70005,70028")
    ap.add_argument("--bare", action="store_true", help="no background interventions")
    args = ap.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        _, _, engine = replay("null", seed, {"interventions": ()} if args.bare else None)
        det = next(d for d in engine.detectors if d.name == "holdout_shift")
        for (platform, wid), panel in det._panels.items():
            if panel is None:
                continue
            info = panel.info
            whole = det._state.cells[(platform, wid, ("*",))]
            acc = look_arrays(whole, hour_weights(info, info.w0, panel.last_ms))
            reg = det._registered(whole)
            fit = (acc.pooled >= det.min_fit_exposures) & np.isfinite(acc.d)
            size = np.log(acc.s_rb + acc.s_hb + 1)
            st = panel.scopes[("*",)]
            k = panel.k
            est, var = st.estimate[:k], st.variance[:k]
            ok = np.isfinite(est) & np.isfinite(var)
            z = est[ok] / np.sqrt(var[ok])
            print(
                f"seed {seed} {wid}: reference c {st.ref.c:+.3f} (se "
                f"{np.sqrt(st.ref.var_c):.3f}), κ {st.ref.gamma:+.3f}, σ² {panel.sigma2:.3f}"
            )
            for name, sel in (("unregistered (control)", fit & ~reg), ("registered", fit & reg)):
                d = acc.d[sel]
                print(
                    f"  {name:24s} n {int(sel.sum()):3d}  mean D {d.mean():+.3f}  median "
                    f"{np.median(d):+.3f}  mean log size {size[sel].mean():.2f}"
                )
            print(
                f"  registered subjects' z: n {int(ok.sum())}, mean {z.mean():+.2f}, "
                f"sd {z.std():.2f}, min {z.min():+.2f}, max {z.max():+.2f}"
            )


if __name__ == "__main__":
    main()
