"""`adaptive train-estimator`: train a difficulty estimator from graded sample logs."""
from __future__ import annotations

from ..errors import InputError
from .common import positive_int

HELP = "train a difficulty estimator from graded sample logs"


def add_arguments(p) -> None:
    p.add_argument("--logs", required=True, help="JSONL of graded samples (see adaptive.estimators.train)")
    p.add_argument("--estimator", default="probe", choices=["heuristic", "probe", "sample_probe"],
                   help="heuristic: text features; probe: the model's prompt pass (default); sample_probe: one "
                        "cheap sample's confidence")
    p.add_argument("--out", required=True,
                   help="output .npz: the model's arrays, no pickle (metadata goes to OUT.json)")
    p.add_argument("--model", default=None, help="model id or path (default: the embedded model)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--val-frac", type=float, default=0.2,
                   help="share of prompts held out for validation, in [0, 1) (split by prompt; default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split (default 0)")
    p.add_argument("--bins", default=None, help="number of equal-width bins, or 'quantile'")
    p.add_argument("--layers", default=None, help="probe layers, e.g. 0.5,0.75 (depths) or 12,18 (indices)")
    p.add_argument("--pooling", default=None, help="probe pooling: mean, last or mean,last")
    p.add_argument("--pca", type=positive_int, default=None,
                   help="probe: reduce the features to this many PCA components (default: no PCA)")
    p.add_argument("--C", type=float, default=None, dest="C",
                   help="fixed logistic C (the probe otherwise picks C by grouped CV on the training prompts)")
    p.add_argument("--C-grid", default=None, dest="C_grid",
                   help="candidate C values for that CV, e.g. 0.001,0.01,0.1")
    p.add_argument("--model-type", default=None, choices=["logistic", "ridge"],
                   help="the regression on the features (default logistic)")
    p.add_argument("--calibration", default=None, choices=["auto", "isotonic", "sigmoid", "none"],
                   help="how scores become probabilities (default auto: isotonic from 200 prompts, sigmoid "
                        "from 30, else none)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="prompts per forward pass (default 16)")


def _parse_numbers(text: str, flag: str, as_float: bool = False) -> list:
    """Comma-separated numbers; without `as_float`, a token without a '.' is an int (a layer index)."""
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            out.append(float(tok) if as_float or "." in tok else int(tok))
        except ValueError:
            raise InputError(f"{flag}: {tok!r} is not a number") from None
    return out


def run(args) -> int:
    """Entry for `adaptive train-estimator`: reads args.logs, trains args.estimator, writes args.out.
    Prints the report's headline numbers; returns 0. Raises AdaptiveError subclasses on bad input."""
    from ..estimators.persistence import check_path
    from ..estimators.train import estimators_need_model, load_labels, train_estimator

    g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    kind = g("estimator", "probe")
    check_path(g("out"))  # before loading logs or a model
    records = load_labels(g("logs"))
    kw = {}
    if g("layers"):
        kw["layers"] = _parse_numbers(g("layers"), "--layers")
    if g("pooling"):
        kw["pooling"] = [s.strip() for s in g("pooling").split(",") if s.strip()]
    for name, key in (("pca", "pca"), ("C", "C"), ("calibration", "calibration"), ("model_type", "model")):
        if g(name) is not None:
            kw[key] = g(name)
    if g("C_grid"):
        kw["C_grid"] = _parse_numbers(g("C_grid"), "--C-grid", as_float=True)
    elif g("C") is not None and kind == "probe":
        kw["C_grid"] = None  # an explicit C is used as given
    bins = g("bins")
    if isinstance(bins, str) and bins != "quantile":
        try:
            bins = int(bins)
        except ValueError:
            raise InputError(f"--bins={bins!r}: an integer or 'quantile'") from None
    backend = None
    if estimators_need_model(kind):
        from ..backends.hf import HFBackend

        backend = HFBackend.from_pretrained(g("model"), device=g("device", "auto") or "auto")
    report = train_estimator(kind, records, backend, g("out"), val_frac=g("val_frac", 0.2), seed=g("seed", 0),
                             bins=bins, batch_size=g("batch_size", 16) or 16, **kw)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{kind}: trained on {report['n_train']} prompts, validated on {report['n_val']} "
          f"(calibration {report['calibration']}, {report['feature_size']} features)")
    print(f"val AUROC {fmt(report['auroc'])} | Spearman {fmt(report['spearman'])} | Brier {fmt(report['brier'])}"
          f" (baseline {fmt((report['val'] or {}).get('brier_baseline'))}) | ECE {fmt(report['ece'])}")
    print(f"wrote {report['out']} (+ .json metadata), {report.get('reliability_png')}, {report.get('report_json')}")
    return 0
