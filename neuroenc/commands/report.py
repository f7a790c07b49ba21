"""Write the self-contained HTML report of encoding results (one results file per subject)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .._settings import add_options

    parser.add_argument("--results", nargs="+", required=True, metavar="PATH",
                        help="results files (.h5, one per subject), folders of them, or glob patterns")
    parser.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    parser.add_argument("--title", default=None, help="page title (default: from the model and data set)")
    parser.add_argument("--mask", default=None,
                        help="NIfTI mask of voxel targets, when the results' provenance does not name it")
    parser.add_argument("--metrics", default=None, metavar="TABLE",
                        help="layer-science metrics: a `neuroenc metrics` .h5 file, or a .csv/.tsv table "
                             "(metric, layer, value)")
    parser.add_argument("--interventions", default=None, metavar="TABLE",
                        help="layer-science interventions table (.csv/.tsv: intervention, target, layer, r)")
    # map_layers' parameters: defaults, allowed values and help from the library.
    add_options(parser.add_argument_group("mapping (neuroenc.mapping.map_layers)"), mapping_settings(),
                names={"random_state": "--seed"})


def mapping_settings() -> dict:
    """The options of the layer mapping: :func:`~neuroenc.mapping.map_layers`' parameters."""
    from .._settings import settings_of
    from ..mapping import map_layers

    return settings_of(map_layers, include=("score", "n_boot", "n_permutations", "random_state"))


def _read_table(path: str, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} table not found: {path!r}.")
    if what == "metrics" and p.suffix.lower() in (".h5", ".hdf5"):
        from ..features.metrics_layers import LayerMetrics

        return LayerMetrics.load(p).to_frame()
    if p.suffix.lower() not in (".csv", ".tsv", ".txt"):
        allowed = ".h5 (neuroenc metrics), .csv or .tsv" if what == "metrics" else ".csv or .tsv"
        raise ValueError(f"{what} table {path!r} must be a {allowed} file, got {p.suffix!r}.")
    return pd.read_csv(p, sep="," if p.suffix.lower() == ".csv" else "\t")


def _read_dataset(name: str, obj) -> None:
    import h5py

    if isinstance(obj, h5py.Dataset):
        obj[()]


def _results_files(sources: list[str]) -> list[Path]:
    """The results files of ``--results`` (folders and patterns expanded), each readable, none
    twice.

    Raises
    ------
    ValueError
        For a file given twice (the same path, or identical content: one subject counted twice)
        or a file that is not a complete results file (truncated, or another kind of file).
    """
    import hashlib

    import h5py

    from ..encoding.results import RESULTS_FORMAT
    from ..mapping.collect import results_files

    files = [p for source in sources for p in results_files(source)]
    seen: dict[str, Path] = {}
    for path in files:
        real = str(path.resolve())
        if real in seen:
            raise ValueError(
                f"--results names the results file {str(path)!r} twice (it would count as two "
                "subjects); give each subject's file once."
            )
        seen[real] = path
    digests: dict[str, Path] = {}
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != RESULTS_FORMAT:
                    raise ValueError(f"results file {str(path)!r} is not a neuroenc results file (no "
                                     f"format {RESULTS_FORMAT!r}); pass the .h5 files `neuroenc fit` wrote.")
                f.visititems(_read_dataset)  # every byte: a truncated file fails here
        except (OSError, KeyError, RuntimeError) as err:  # h5py's errors for truncated files
            raise ValueError(
                f"results file {str(path)!r} cannot be read ({' '.join(str(err).split())}): it is "
                "truncated or damaged. Fit that subject again (neuroenc fit ... --out) to rewrite it."
            ) from err
        h = hashlib.sha256()
        with open(path, "rb") as fid:
            for chunk in iter(lambda: fid.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        if digest in digests:
            raise ValueError(
                f"--results files {str(digests[digest])!r} and {str(path)!r} are identical: the same "
                "results twice would count as two subjects. Give each subject's file once."
            )
        digests[digest] = path
    return files


def run(args: argparse.Namespace) -> int:
    from .._settings import given
    from ..mapping import map_layers
    from ..report import make_report
    from ._common import check_out

    files = _results_files(args.results)
    check_out(args.out, [*files, args.metrics, args.interventions, args.mask], example="report.html")
    mapping = map_layers([str(p) for p in files], **given(args, mapping_settings()))
    metrics = _read_table(args.metrics, "metrics") if args.metrics else None
    interventions = _read_table(args.interventions, "interventions") if args.interventions else None
    out = make_report(mapping, args.out, title=args.title, mask_img=args.mask,
                      metrics=metrics, interventions=interventions)
    print(f"Report written to {out.resolve()}")
    print(mapping.summary())
    return 0
