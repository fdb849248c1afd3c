"""Ship what a demo run learned for the embedded model as the package's default policies.

    python scripts/ship_defaults.py runs/demo

Copies the run's fitted estimator to adaptive/resources/policies/embedded_probe.npz (+ .json) and its tuned
binned_stopping and allocate policies at a mean budget of 4 samples to binned_default.yaml and
allocate_default.yaml, each naming that estimator, so `AdaptiveGenerator.from_pretrained(policy=
"binned_default")` works out of the box. The demo run is what reproduces them (`make demo`).
"""
import argparse
import shutil
import sys
from pathlib import Path

import yaml

SHIP = {"binned_stopping": "binned_default", "allocate": "allocate_default"}
ESTIMATOR = "embedded_probe.npz"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished demo run directory (runs/demo)")
    ap.add_argument("--budget", default="4", help="which tuned budget to ship (default 4)")
    args = ap.parse_args()
    from adaptive.errors import ConfigError
    from adaptive.estimators import load_estimator
    from adaptive.policies import load_policy
    from adaptive.resources import shipped

    src = Path(args.run) / "policies"
    dest = shipped("policies", "fixed_sc8").parent
    est = next(src.glob("estimator_*.npz"), None)
    if est is None:
        raise ConfigError(f"{src}: no fitted estimator (run the demo first)")
    load_estimator(est)  # refuse to ship a file that does not load
    shutil.copyfile(est, dest / ESTIMATOR)
    shutil.copyfile(Path(str(est) + ".json"), dest / (ESTIMATOR + ".json"))
    for family, name in SHIP.items():
        f = src / f"{family}_b{args.budget}.yaml"
        if not f.is_file():
            raise ConfigError(f"{f} is missing: the demo's live budgets must include {args.budget}")
        raw = yaml.safe_load(f.read_text())
        raw.update(name=name, estimator=ESTIMATOR,
                   description=f"{raw.get('description', '')} (tuned by `adaptive demo` on the embedded model's "
                               f"skills_mixed bank; scripts/ship_defaults.py)")
        (dest / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, width=120))
        load_policy(dest / f"{name}.yaml")
        print(f"shipped {dest / (name + '.yaml')} ({family}, budget {args.budget})")
    print(f"shipped {dest / ESTIMATOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
