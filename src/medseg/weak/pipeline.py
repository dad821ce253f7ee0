"""`supervision: image-labels`: from image-level labels to a segmentation network, in one run folder.
This module runs the stages in order and resumes them; the stages' configs are in `weak.stages`, what is chosen on
the validation patients in `weak.choices`, each round's pseudo-masks in `weak.relabelling`, weak.json in
`weak.weak_json`.

    <run>/weak.yaml                  the pipeline's config, as given (resolved)
    <run>/classifier/                a classification run on the image labels (its own config, metrics, checkpoints)
    <run>/classifier-try<k>/         with `weak.classifier_tries`: another seed's classifier, trained when the
                                     earlier ones' maps did not localise on the validation patients (every try
                                     with `weak.choose_classifier`)
    <run>/pseudo_masks.npz           round 1's pseudo-masks of the training and validation images, from the
                                     classifier's maps (refined by a CRF with `weak.refine: crf`)
    <run>/round<k>/                  with `weak.rounds` > 1: the segmentation run of round k < last, whose
                                     confident predictions are round k+1's pseudo-masks (pseudo_masks_round<k+1>.npz)
    <run>/weak.json                  every stage's figures: classifier, the maps chosen (`weak.choose_maps`),
                                     thresholds, each round's pseudo-masks against the true masks where known
    <run>/...                        the last round's segmentation run: its config.yaml, checkpoints, metrics;
                                     its test evaluation uses the true masks
    <run>/config.yaml (eval)         with `weak.choose_postprocessing`: the post-processing that scored best on the
                                     validation patients' true masks
    <run>/weak_panels/               a few test slices: image | map | refined pseudo-mask | prediction | truth

True masks are never a training target: the classifier sees only image labels (lesion present: the mask is not
empty; or the case's label), the segmentation networks' training and validation masks are pseudo-masks, and the
thresholds chosen with `weak.choose_thresholds` are chosen on the validation patients, never on test.
"""

from __future__ import annotations

from pathlib import Path

from medseg.atomic import write_text_atomic
from medseg.checkpoint_io import load_checkpoint
from medseg.config import Config, load_config
from medseg.engine.distributed import setup_distributed
from medseg.engine.trainer import TrainResult, claim, claim_new, fit_run, train_or_resume
from medseg.postprocessing_choice import choose_postprocessing
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder
from medseg.ui import console, labelled
from medseg.weak.choices import choose_classifier, chosen_maps, localisation_warning
from medseg.weak.panels import write_panels
from medseg.weak.relabelling import relabel, write_pseudo_masks
from medseg.weak.stages import segmentation_config
from medseg.weak.weak_json import read_report, record

__all__ = ["train_weak", "resume_weak"]


def train_weak(cfg: Config, run_dir: str | Path, overwrite: bool = False, show_progress: bool = True) -> TrainResult:
    """Run the stages into a new run folder `run_dir` (see the module docstring); returns the last segmentation
    round's result.

    Raises:
        ValueError: two-class image labels given as `case` without exactly two classes.
        RunFolderError: `run_dir` holds a run (unless `overwrite`), or another process trains there.
    """
    if cfg.weak.label_from == "case" and len(cfg.weak.classes or []) < 2:
        raise ValueError(
            "supervision: image-labels needs image labels: weak.label_from: mask (lesion present), or label_from: "
            f"case with weak.classes [absent, present] or the lesion types; got classes {cfg.weak.classes}"
        )
    cfg = resolve_config(cfg)
    run, ctx = RunFolder(run_dir), setup_distributed(cfg.train.device)
    with claim_new(run, ctx, overwrite):
        if ctx.is_main:
            write_text_atomic(run.weak_config_path, cfg.to_yaml())
        return _run_stages(cfg, run, show_progress)


def resume_weak(run_dir: str | Path, show_progress: bool = True) -> TrainResult:
    """Continue an interrupted `supervision: image-labels` run from the stage it reached."""
    run = RunFolder(run_dir)
    cfg = resolve_config(load_config(run.weak_config_path), str(run.weak_config_path))
    ctx = setup_distributed(cfg.train.device)
    with claim(run, ctx):
        return _run_stages(cfg, run, show_progress)


def _run_stages(cfg: Config, run: RunFolder, show_progress: bool) -> TrainResult:
    ctx = setup_distributed()
    if not run.pseudo_masks_path.is_file():  # else stage 1 is done and its classifier chosen
        choose_classifier(cfg, run, show_progress)
    classifier = run.classifier
    cfg = chosen_maps(cfg, run, classifier)
    if ctx.is_main and not run.pseudo_masks_path.is_file():
        stage1 = write_pseudo_masks(classifier, cfg, run.pseudo_masks_path)
        warning = localisation_warning(stage1)
        if warning:
            stage1["warning"] = warning
            console.print(labelled("warning:", "bold yellow", str(warning)), soft_wrap=True)
        record(run, "stage1", stage1)
    ctx.barrier()
    for k in range(1, cfg.weak.rounds):  # the rounds before the last train in sub-folders
        folder, masks, relabelled = (
            run.round_folder(k),
            run.round_pseudo_masks_path(k),
            run.round_pseudo_masks_path(k + 1),
        )
        train_or_resume(segmentation_config(cfg, run, masks), folder.path, show_progress)
        if ctx.is_main and not relabelled.is_file():
            record(run, f"round{k + 1}", relabel(folder, classifier, cfg, relabelled))
        ctx.barrier()
    stage2 = run.checkpoint("last")
    saved = load_checkpoint(stage2) if stage2.is_file() else None
    final = segmentation_config(cfg, run, run.round_pseudo_masks_path(cfg.weak.rounds))
    result = fit_run(run, final, ctx, saved, show_progress)
    if ctx.is_main and cfg.weak.choose_postprocessing and "postprocessing" not in read_report(run):
        record(run, "postprocessing", choose_postprocessing(run.path, "val"))
    if ctx.is_main:
        write_panels(run, cfg)
    return result
