"""The `medseg` command line: demo, train, evaluate, predict, report, budget, select, data inspect."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, cast

import typer

from medseg.errors import ConfigError, DataError, MemoryBudgetError, TrainingDivergedError
from medseg.ui import console, labelled

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
data_app = typer.Typer(no_args_is_help=True, help="Look at a dataset before training on it.")
app.add_typer(data_app, name="data")

# what a user's input or setting causes (each message names the file, field or setting); anything else is a bug and
# keeps its traceback
USER_ERRORS = (ConfigError, DataError, FileNotFoundError, ValueError, TrainingDivergedError, MemoryBudgetError)


@app.callback()
def _stop_on_terminate() -> None:
    """A SIGTERM (a job scheduler's or `kill`'s stop) ends a command as Ctrl-C does, so that what it started is
    cleaned up the same way (a run stopped before its first checkpoint leaves nothing behind)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def _fail(error: Exception) -> None:
    """One `error:` line (line breaks and other unprintable characters in the message shown escaped), exit 2."""
    message = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(error))
    console.print(labelled("error:", "bold red", message), soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def train(
    target: Annotated[str, typer.Argument(help="config YAML, or a run folder with --resume")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. train.epochs=5")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in TARGET from its last.pt")] = False,
    run_dir: Annotated[Path | None, typer.Option(help="run folder (default: <output_dir>/<name>-<time>)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace the run already in --run-dir (its files go)")] = False,
    skip_bad: Annotated[bool, typer.Option(help="skip unusable cases and list them (data.skip_bad=true)")] = False,
    evaluate: Annotated[bool, typer.Option(help="evaluate on the test split and write report.html after")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Train a model from a config (or resume a run), then evaluate it on its test split."""
    from medseg.engine.distributed import setup_distributed

    try:
        if resume:
            if overrides or overwrite:
                raise ValueError("--resume continues a run as it was: no overrides, no --overwrite")
            folder, result = _resume(Path(target), quiet)
        else:
            folder, result = _train_new(target, overrides or [], run_dir, overwrite, skip_bad, quiet)
        if not setup_distributed().is_main:  # under torchrun: one process reports and evaluates
            return
        console.print(
            f"trained {result.epochs_done} epochs in {result.seconds / 60:.1f} min; "
            f"best val {result.validation_metric} {result.best_val_score:.4f}; run folder: {folder}"
        )
        _warn_if_not_converged(folder)
        if evaluate:
            _evaluate_and_report(folder, "test", strict=False)
    except USER_ERRORS as error:
        _fail(error)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _warn_if_not_converged(folder: Path) -> None:
    """Say so when validation still moved over the last 30% of training (rising: train longer; falling: drifted)."""
    from medseg.convergence import convergence_warning
    from medseg.run_folder import RunFolder

    warning = convergence_warning(RunFolder(folder).metrics())
    if warning:
        console.print(labelled("warning:", "bold yellow", str(warning)), soft_wrap=True)


def _train_new(
    target: str, overrides: list[str], run_dir: Path | None, overwrite: bool, skip_bad: bool, quiet: bool
) -> tuple[Path, object]:
    from medseg.engine.distributed import setup_distributed
    from medseg.engine.trainer import train as run_training
    from medseg.resolve import load_resolved
    from medseg.run_folder import new_run_path

    cfg = load_resolved(target, [*overrides, *(["data.skip_bad=true"] if skip_bad else [])])
    if run_dir is None:  # the main process claims a new name; under torchrun every process uses it
        ctx = setup_distributed(cfg.train.device)
        run_dir = Path(ctx.from_main(str(new_run_path(cfg.output_dir, cfg.name)) if ctx.is_main else None))
    if cfg.supervision == "image-labels":
        from medseg.weak.pipeline import train_weak

        result = train_weak(cfg, run_dir, overwrite, show_progress=not quiet)
        console.print(f"pseudo-masks and their quality: {run_dir / 'weak.json'}")
        return run_dir, result
    return run_dir, run_training(cfg, run_dir, overwrite, show_progress=not quiet)


def _resume(folder: Path, quiet: bool) -> tuple[Path, object]:
    from medseg.engine.trainer import resume
    from medseg.run_folder import RunFolder

    run = RunFolder(folder)
    if run.weak_config_path.is_file():
        from medseg.weak.pipeline import resume_weak

        return folder, resume_weak(folder, show_progress=not quiet)
    if not run.config_path.is_file():
        raise FileNotFoundError(f"{folder}: not a run folder (no config.yaml); --resume takes a run folder")
    return folder, resume(folder, show_progress=not quiet)


def _evaluate_and_report(
    folder: Path, split: str, overrides: list[str] | None = None, strict: bool = True, mode: str | None = None
) -> None:
    from medseg.evaluation import evaluate_run
    from medseg.report import write_report

    try:
        summary = evaluate_run(folder, split, overrides=overrides, mode=mode)
    except ValueError as error:
        if strict:
            raise
        console.print(f"not evaluated: {error}")
        summary = None
    if summary:
        _print_summary(summary, split, folder)
        from medseg.explanations.gallery import write_gallery

        try:
            write_gallery(folder, split, mode=mode)
        except (ValueError, RuntimeError, KeyError) as error:  # a model no explanation applies to: the report goes on
            console.print(f"no explanation gallery: {error}")
    console.print(f"report: {write_report(folder)}")


def _print_summary(summary: dict, label: str, folder: Path) -> None:
    if summary.get("task") == "classification":
        shown = ", ".join(f"{name} {m['mean']:.4f}" for name, m in summary["metrics"].items() if m["mean"] is not None)
        console.print(f"{label}: {shown} over {summary['cases']} images → {folder / 'eval' / label}")
        return
    dice, hd = summary["metrics"]["dice"], summary["metrics"]["hd95"]
    console.print(
        f"{label}: Dice {dice['mean']:.4f} ± {dice['std']:.4f}, HD95 {hd['mean']:.2f} px "
        f"over {summary['cases']} cases ({summary['checkpoint']}, epoch {summary['epoch']}) "
        f"at {summary.get('resolution', summary['size'])} → {folder / 'eval' / label}"
    )


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run folder")],
    overrides: Annotated[list[str] | None, typer.Argument(help="eval.* overrides, e.g. eval.tta=true")] = None,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    prune: Annotated[str | None, typer.Option(help="U-Net++: compute only the sub-network of head L (L1..L4)")] = None,
    head: Annotated[int | None, typer.Option(help="U-Net++: use head K of the full network")] = None,
    data: Annotated[
        Path | None, typer.Option(help="another labelled data set: a YAML with a data: section, or a folder")
    ] = None,
    name: Annotated[str | None, typer.Option(help="with --data: the output's name, eval/<name>/")] = None,
) -> None:
    """Per-case metrics, summary and overlays of a run's checkpoint (eval.checkpoint: best or last) on one split,
    or with --data on every case of another labelled data set (the run's preprocessing); refreshes report.html."""
    try:
        mode = _inference_mode(prune, head)
        if data is None:
            _evaluate_and_report(run, split, overrides, mode=mode)
            return
        from medseg.evaluation import evaluate_external, external_label
        from medseg.report import write_report

        summary = evaluate_external(run, data, name, overrides=overrides, mode=mode)
        label = external_label(data, name)
        _print_summary(summary, label, run)
        console.print(f"report: {write_report(run)}")
    except USER_ERRORS as error:
        _fail(error)


@app.command()
def predict(
    paths: Annotated[
        list[Path], typer.Argument(help="RUN INPUT... (run folder or .pt, then inputs), or INPUT... with --onnx")
    ],
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("predictions"),
    onnx: Annotated[Path | None, typer.Option("--onnx", help="predict with an exported ONNX model")] = None,
    threshold: Annotated[float | None, typer.Option(help="probability threshold (binary)")] = None,
    overwrite: Annotated[bool, typer.Option(help="recompute outputs that already exist")] = False,
    skip_bad: Annotated[bool, typer.Option(help="skip unreadable inputs and list them in OUT/skipped.csv")] = False,
    prune: Annotated[str | None, typer.Option(help="U-Net++: compute only the sub-network of head L (L1..L4)")] = None,
    head: Annotated[int | None, typer.Option(help="U-Net++: use head K of the full network")] = None,
    format: Annotated[
        str, typer.Option("--format", help="a DICOM series' mask: nifti (the series' geometry) or dicom-seg")
    ] = "nifti",
) -> None:
    """Predict masks for image files, .mat files, NIfTI volumes, DICOM series or folders of them, streaming in
    batches: `<name>_mask.png` + `<name>_overlay.png` per image, `<name>_mask.nii.gz` per volume, the folders' trees
    mirrored in OUT (inputs that would share a name keep their suffix: `5.png_mask.png`, `5.tif_mask.png`); a DICOM
    series (files grouped by SeriesInstanceUID, any names) writes `<series hash>_mask.nii.gz`, or with
    `--format dicom-seg` a DICOM-SEG referencing the series (segment codes from the run's `data.segments`).
    Outputs already present are kept, so an interrupted run resumes (--overwrite recomputes them); OUT's
    contents are never inputs."""
    from rich.progress import track

    from medseg.predict import SKIPPED_CSV, DicomOutput, plan_outputs, predict_paths

    try:
        if onnx is not None:
            if prune is not None or head is not None:
                raise ValueError("--prune / --head are fixed when exporting (medseg export --prune); not with --onnx")
            from medseg.onnx_export import OnnxPredictor

            predictor, inputs = OnnxPredictor.load(onnx), list(paths)
        else:
            from medseg.inference import Predictor

            if len(paths) < 2:
                raise ValueError("give a run folder (or checkpoint) and at least one input, or --onnx MODEL")
            predictor, inputs = Predictor.load(paths[0], mode=_inference_mode(prune, head)), list(paths[1:])
        if threshold is not None:
            if not 0 < threshold < 1:  # also refuses nan
                raise ValueError(f"--threshold is a probability strictly between 0 and 1, got {threshold}")
            predictor.cfg.eval.threshold = threshold
        if format not in ("nifti", "dicom-seg"):
            raise ValueError(f"--format takes nifti or dicom-seg, got {format!r}")
        dicom_output = cast(DicomOutput, format)
        total = len(plan_outputs(inputs, out, dicom_output))
        skipped: list[tuple[str, str]] = []
        written = list(
            track(
                predict_paths(
                    predictor, inputs, out, overwrite, skip_bad=skip_bad, skipped=skipped, dicom_output=dicom_output
                ),
                total=total,
                description="predicting",
                console=console,
            )
        )
        console.print(f"{len(set(written))} masks in {out}", highlight=False, soft_wrap=True)
        if skipped:
            inputs_word = "input" if len(skipped) == 1 else "inputs"
            console.print(
                f"skipped {len(skipped)} unreadable {inputs_word}, listed in {out / SKIPPED_CSV}",
                highlight=False,
                soft_wrap=True,
            )
    except USER_ERRORS as error:
        _fail(error)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run folder or checkpoint (.pt)")],
    out: Annotated[Path | None, typer.Option("--out", help="the .onnx file (default: RUN/model[-L].onnx)")] = None,
    format: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    prune: Annotated[str | None, typer.Option(help="U-Net++: export only the sub-network of head L (L1..L4)")] = None,
    head: Annotated[int | None, typer.Option(help="U-Net++: export head K of the full network")] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="quantise to INT8, calibrated on the run's training images")
    ] = False,
    calibration: Annotated[
        int, typer.Option(help="--int8: training images, spread over the split, that calibrate the ranges")
    ] = 256,
) -> None:
    """Export a run's inference to ONNX (dynamic batch and image size); predict with `medseg predict --onnx`.
    With --int8, post-training static quantisation (weights int8 per channel, activations uint8) for CPUs with
    integer dot products (VNNI)."""
    try:
        if format != "onnx":
            raise ValueError(f"--format must be onnx, got {format!r}")
        from medseg.onnx_export import export_onnx

        mode = _inference_mode(prune, head)
        if calibration < 1:
            raise ValueError(f"--calibration takes a number of images ≥ 1, got {calibration}")
        if out is None:
            folder = run if run.is_dir() else run.parent
            stem = f"model-{mode.replace('=', '')}" if mode else "model"
            out = folder / f"{stem}{'-int8' if int8 else ''}.onnx"
        console.print(f"exported {export_onnx(run, out, mode, int8_calibration=calibration if int8 else None)}")
    except USER_ERRORS as error:
        _fail(error)


def _inference_mode(prune: str | None, head: int | None) -> str | None:
    if prune is not None and head is not None:
        raise ValueError("choose --prune or --head, not both")
    if prune is not None:
        level = prune.upper().removeprefix("L")
        if not level.isdigit():
            raise ValueError(f"--prune takes a level such as L2 or 2, got {prune!r}")
        return f"prune={int(level)}"
    return f"head={head}" if head is not None else None


class _ExplainCommand(typer.core.TyperCommand):
    """`medseg explain`, whose `--method` help lists the explanation registry: read only when the help is shown, so
    that no other command pays for importing the methods (and torch)."""

    def format_help(self, ctx, formatter) -> None:
        from medseg.explain import EXPLAINERS

        for param in self.params:
            if param.name == "method":
                param.help = "explanation method: " + " | ".join(EXPLAINERS.names())
        super().format_help(ctx, formatter)


@app.command(cls=_ExplainCommand)
def explain(
    run: Annotated[Path, typer.Argument(help="run folder or checkpoint (.pt)")],
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="2-D image files, .mat files or folders (none with --score)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("explanations"),
    method: Annotated[str, typer.Option(help="explanation method (the list: medseg explain --help)")] = "attention",
    score: Annotated[
        bool,
        typer.Option(
            "--score",
            help="score the methods (--method, or all that fit the model) against the true masks of the run's "
            "--split: pointing game, energy inside the lesion, deletion and insertion areas",
        ),
    ] = False,
    split: Annotated[str, typer.Option(help="--score: the split whose lesion slices are scored")] = "test",
    limit: Annotated[int | None, typer.Option(help="--score: at most this many lesion slices")] = None,
    class_index: Annotated[int | None, typer.Option("--class", help="class to explain (default: predicted)")] = None,
    layer: Annotated[str | None, typer.Option(help="layer the method reads (default: deepest encoder stages)")] = None,
    region: Annotated[str, typer.Option(help="segmentation Grad-CAM target: predicted | all")] = "predicted",
) -> None:
    """Explain predictions: the image beside a heat map with a colour bar (PNG) and the raw map (.npy).

    `attention` draws an attention model's spatial maps (one per block); `cam`/`acam` a classifier's class
    activation map; the gradient methods (`gradcam`, `gradcam++`, `xgradcam`, `hirescam`, `layercam`) and the
    gradient-free `scorecam` and `eigencam` work for classifiers and segmentation networks.
    """
    from medseg.explanations.outputs import explain_paths

    try:
        if score:
            _score_explanations(run, None if method == "attention" else [method], split, limit)
            return
        if not inputs:
            raise ValueError("give the inputs to explain, or --score to score the methods on the run's split")
        written = list(explain_paths(run, list(inputs), out, method, class_index, layer, region))
        console.print(f"{len(written)} {method} maps in {out}")
    except USER_ERRORS as error:
        _fail(error)


def _score_explanations(run: Path, methods: list[str] | None, split: str, limit: int | None) -> None:
    """Print the methods' scores and write them to `<run>/eval/<split>/explanation_scores.json`."""
    import json

    from rich.table import Table

    from medseg.atomic import atomic_path
    from medseg.explanations.scores import score_methods

    rows = list(score_methods(str(run), methods, split, limit))
    table = Table(title=f"explanations on the {split} split's lesion slices ({rows[0]['slices']})")
    for column in ("method", "pointing game", "energy inside", "deletion area ↓", "insertion area ↑", "seconds"):
        table.add_column(column)
    for row in rows:
        figures = [row["pointing"], row["energy_inside"], row["deletion_auc"], row["insertion_auc"]]
        table.add_row(row["method"], *(f"{value:.3f}" for value in figures), f"{row['seconds']:.1f}")
    console.print(table)
    target = (run if run.is_dir() else run.parent) / "eval" / split / "explanation_scores.json"
    with atomic_path(target, suffix=".json") as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    console.print(f"written: {target}", highlight=False, soft_wrap=True)


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="one run folder, or several to compare")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="the page: default RUN/report.html for one run, comparison.html for several"),
    ] = None,
    split: Annotated[str, typer.Option(help="the evaluated split the comparison shows")] = "test",
) -> None:
    """(Re)write a run's report.html, or compare several runs on one page (table, curves, label budget)."""
    from medseg.report import write_comparison, write_report

    try:
        if len(runs) == 1:
            console.print(f"report: {write_report(runs[0], out)}", highlight=False, markup=False)
        else:
            page = write_comparison(runs, out or Path("comparison.html"), split)
            console.print(f"comparison of {len(runs)} runs: {page}", highlight=False, markup=False)
    except USER_ERRORS as error:
        _fail(error)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def budget(
    arguments: Annotated[
        list[str],
        typer.Argument(
            help="CONFIG, key=value overrides, then --ratios R..., --methods M..., --seeds S..., --out DIR; a method "
            "is `name` or `name:key=value` (config overrides for that method's runs); --select S [--rounds K] "
            "[--cold-start S] [--max-per-group N] simulates the annotation loop with selection strategy S",
            show_default=False,
        ),
    ],
) -> None:
    """The label-budget curve: train every method at every share of labelled training cases and seed, on one
    split (resumable: finished points are kept), then write budget.csv / budget.md, the Dice-vs-labelled-share
    plot with error bars (budget.png) and report.html. Defaults: --ratios 0.05 0.1 0.25 0.5 1 --methods supervised
    --seeds 0 1 2, into <output_dir>/<name>-budget.

        medseg budget configs/figshare-semi.yaml --ratios 0.05 0.1 0.25 0.5 1 --methods supervised bcp --seeds 0 1 2

    With --select S, each method and seed is an annotation loop instead of a random draw: a cold-start pick at the
    first share, then each next share's cases picked with the model trained at the one before (--rounds K: K
    equal rounds up to each share; --cold-start: the first round's strategy where S needs a model).
    """
    from medseg.config import load_config
    from medseg.resolve import resolve_config
    from medseg.sweep.arguments import parse_budget_arguments
    from medseg.sweep.plan import plan_points
    from medseg.sweep.run import run_budget

    try:
        target, overrides, options = parse_budget_arguments(arguments)
        cfg = load_config(target, overrides)
        resolve_config(cfg, target)  # a typo stops here, before the first point
        folder = Path(options["out"][0]) if options["out"] else Path(cfg.output_dir) / f"{cfg.name}-budget"
        ratios = [_number(float, r, "--ratios") for r in options["ratios"]]
        seeds = [_number(int, s, "--seeds") for s in options["seeds"]]
        selection = _selection(options)
        points = plan_points(options["methods"], ratios, seeds, selection.strategy if selection else None)
        console.print(f"{len(points)} points → {folder}" if not selection else f"annotation loops → {folder}")
        note = lambda line: console.print(line, highlight=False, markup=False)  # noqa: E731
        run_budget(cfg, folder, options["methods"], ratios, seeds, note=note, selection=selection)
        console.print(f"table: {folder / 'budget.md'}; plot: {folder / 'budget.png'}; report: {folder / 'report.html'}")
    except USER_ERRORS as error:
        _fail(error)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def select(
    target: Annotated[str, typer.Argument(help="a config YAML (cold start) or a trained run folder")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value config overrides (a config only)")] = None,
    strategy: Annotated[
        str, typer.Option(help="random | stratified | foreground_random | diversity | uncertainty | uncertain_diverse")
    ] = "diversity",
    count: Annotated[int | None, typer.Option(help="cases to pick")] = None,
    share: Annotated[float | None, typer.Option(help="cases to pick, as a share of the training cases")] = None,
    out: Annotated[Path, typer.Option(help="picks CSV (id,group,score,why); beside it .labelled.txt and .png")] = Path(
        "picks.csv"
    ),
    max_per_group: Annotated[int | None, typer.Option(help="at most this many labelled cases per group")] = None,
    whole_groups: Annotated[bool, typer.Option(help="pick whole groups (patients / volumes) only")] = False,
    seed: Annotated[int | None, typer.Option(help="the pick's seed (default: the config's)")] = None,
) -> None:
    """Pick the training cases to annotate next: writes the picks (id,group,score,why), the labelled list that
    training reads (data.labeled_file: the cases labelled before and the picks) and a contact sheet.

        medseg select configs/lgg-semi.yaml --share 0.05 --strategy diversity --max-per-group 5 --out round1.csv
        medseg train configs/lgg-semi.yaml data.labeled_ratio=null data.labeled_file=round1.labelled.txt
        medseg select runs/lgg-semi-<time> --count 50 --strategy uncertain_diverse --out round2.csv
    """
    from medseg.selection.next_round import run_select

    try:
        note = lambda line: console.print(line, highlight=False, markup=False)  # noqa: E731
        run_select(target, out, strategy, count, share, seed, whole_groups, max_per_group, overrides or [], note)
    except USER_ERRORS as error:
        _fail(error)


def _number(kind: type, text: str, option: str):
    """`kind(text)`, or a ValueError naming the option and the value."""
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not {'a number' if kind is float else 'a whole number'}") from None


def _selection(options: dict[str, list[str]]):
    """`medseg budget`'s --select, --rounds, --cold-start and --max-per-group as a `Selection` (None without
    --select)."""
    from medseg.sweep.run import Selection

    if not options["select"]:
        return None
    per_group = options["max-per-group"]
    return Selection(
        options["select"][0],
        _number(int, options["rounds"][0], "--rounds"),
        options["cold-start"][0],
        _number(int, per_group[0], "--max-per-group") if per_group else None,
    )


@data_app.command("inspect")
def data_inspect(
    path: Annotated[str, typer.Argument(help="dataset folder, or a config YAML (its data.source)")],
    format: Annotated[str | None, typer.Option(help="reader format (default: guessed from the folder)")] = None,
    mask_suffix: Annotated[str | None, typer.Option(help="masks beside images, e.g. _mask")] = None,
    mask_dir: Annotated[str | None, typer.Option(help="sibling mask folder")] = None,
    image_dir: Annotated[str | None, typer.Option(help="image folder under PATH")] = None,
) -> None:
    """Counts, sizes, label balance and the problems found in a dataset; exits with 1 when it finds problems (so a
    script can use it as a gate), 2 when the dataset cannot be read at all."""
    from medseg.inspection import inspect_config, inspect_source, print_report, source_for

    try:
        if Path(path).is_file() and Path(path).suffix in (".yaml", ".yml"):
            result = inspect_config(path)  # the config's channels, classes and splits checked too
        else:
            source = source_for(path, format=format, mask_suffix=mask_suffix, mask_dir=mask_dir, image_dir=image_dir)
            result = inspect_source(source)
        print_report(result, console)
    except USER_ERRORS as error:
        _fail(error)
    if result.problems:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo's run folder and predictions go")] = Path("demo-out"),
    epochs: Annotated[int, typer.Option(help="training epochs")] = 12,
) -> None:
    """Phantoms → train a U-Net → evaluate → predict → report, in a few minutes on a laptop CPU."""
    from medseg.demo import run_demo

    try:
        run_demo(out, epochs)
    except USER_ERRORS as error:
        _fail(error)


def main() -> None:  # pragma: no cover
    app(prog_name="medseg")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
