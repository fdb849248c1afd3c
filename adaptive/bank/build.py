"""`adaptive bank`: draw K samples per prompt with the eval runner and save them as a sample bank.

    adaptive bank --config bank_arith --out banks/arith.jsonl [--samples 16] [--limit N]

The config is an ordinary eval config (a file, or a shipped one by name). With `--samples K` its first sampling
policy's plan is turned into one fixed-K policy (max_samples K, all in one wave, stopping fixed) named
`bank_k<K>`; otherwise `--policy NAME` (or the config's only policy) is used as it is. The run goes through
`adaptive.evaluate.run_eval` into `--run-dir` (default runs/bank_<config name>; resumable like any eval
run), and its records become the bank. `--estimator FILE` scores every prompt (p_hat, bin) so binned and
allocate policies can be tuned on the bank (a probe estimator loads the model for its prompt pass).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .bank import SAMPLING, Bank


def bank_config(config, samples: int | None, policy: str | None):
    """The eval config to run: the config itself restricted to one policy, or a fixed-K version of it."""
    from ..evaluate.config import parse_config
    from ..policies.schema import plan_fields

    raw = dict(config.raw)
    if samples is None:
        names = [p.name for p in config.policies]
        name = policy or (names[0] if len(names) == 1 else None)
        if name is None:
            raise ConfigError(f"{config.source}: {len(names)} policies; pass --samples K or --policy NAME")
        if name not in names:
            raise ConfigError(f"{config.source}: no policy named {name!r}; defined: {', '.join(names)}")
        raw["policies"] = [p for p in raw["policies"] if p["name"] == name]
        return parse_config(raw, config.source), name
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"--samples {samples!r}: an integer >= 1")
    base = next((p for p in config.policies if p.plan is not None and p.plan.strategy in SAMPLING
                 and (policy is None or p.name == policy)), None)
    if base is None:
        raise ConfigError(f"{config.source}: no sampling policy (self_consistency/best_of_n) to build a bank from")
    plan = base.plan.replace(max_samples=samples, wave_size=0, stopping="fixed", stopping_params={})
    name = f"bank_k{samples}"
    raw["policies"] = [{"name": name, "plan": plan_fields(plan)}]
    return parse_config(raw, config.source), name


def build_bank(config_path, out, samples=None, policy=None, limit=None, run_dir=None, estimator=None,
               backend=None, progress=True) -> Bank:
    from ..evaluate import load_config, run_eval

    config = load_config(config_path)
    cfg, name = bank_config(config, samples, policy)
    run_dir = Path(run_dir or f"runs/bank_{Path(str(config_path)).stem}")
    run_eval(cfg, run_dir, limit=limit, backend=backend, progress=progress, report=False)
    bank = Bank.from_eval_records(run_dir, policy=name)
    if estimator:
        from ..estimators import load_estimator

        if backend is None:
            est_meta_needs_model = True
            try:
                from ..estimators.persistence import read_meta

                est_meta_needs_model = read_meta(estimator).get("needs") != "text"
            except Exception:  # noqa: BLE001 - load_estimator reports a bad file properly below
                pass
            if est_meta_needs_model:
                from ..backends.factory import make_backend

                backend = make_backend(cfg.backend)
        bank.attach_difficulty(load_estimator(estimator, backend=backend))
        bank.source["estimator"] = str(estimator)
    bank.save(out)
    return bank
