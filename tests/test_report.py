import json

from medseg.report import write_report


def test_report_is_self_contained_with_curves_table_and_overlays(tmp_path):
    run = tmp_path / "run"
    (run / "eval" / "test" / "overlays").mkdir(parents=True)
    (run / "config.yaml").write_text("name: <x>\n")
    (run / "metrics.csv").write_text(
        "epoch,step,lr,train_loss,val_dice,seconds\n1,2,0.1,0.9,0.5,1\n2,4,0.1,0.7,0.6,2\n"
    )
    metric = {"mean": 0.8, "std": 0.1, "median": 0.82, "n": 3}
    summary = {
        "split": "test",
        "cases": 3,
        "checkpoint": "best.pt",
        "epoch": 2,
        "size": 64,
        "metrics": {k: metric for k in ("dice", "iou", "sensitivity", "specificity", "precision", "hd95")},
    }
    (run / "eval" / "test" / "summary.json").write_text(json.dumps(summary))
    import numpy as np

    from medseg.overlay import save_png

    save_png(run / "eval" / "test" / "overlays" / "best_00_a.png", np.zeros((8, 8, 3), np.uint8))
    page = write_report(run).read_text()
    assert page.count("data:image/png;base64,") == 2  # curves + one overlay
    assert "0.8000" in page and "&lt;x&gt;" in page  # table value; config escaped
    assert "http://" not in page and "https://" not in page  # nothing fetched from a network


def test_report_names_the_lesion_cases_dice_and_the_false_positives_apart():
    from medseg.report import _table

    metric = {"mean": 0.8, "std": 0.1, "median": 0.82, "n": 5}
    summary = {"metrics": {"dice": metric}}
    assert "lesion" not in _table(summary), "an older summary has no split by truth"
    summary["by_truth"] = {
        "lesion": {"dice": {"mean": 0.61, "std": 0.2, "median": 0.7, "n": 2}, "n": 2},
        "lesion_free": {"false_positive_rate": 0.25, "n": 4},
    }
    text = _table(summary)
    assert "lesion (2): Dice 0.6100" in text and "(4): a mask predicted on 25.0%" in text
    summary["by_truth"]["lesion_free"] = {"false_positive_rate": None, "n": 0}
    assert "Lesion-free" not in _table(summary)


def test_curves_skip_epochs_without_a_validation_score_and_histories_without_one(tmp_path):
    from medseg.report import _curves
    from medseg.run_folder import RunFolder

    (tmp_path / "metrics.csv").write_text(
        "epoch,step,lr,train_loss,val_dice,seconds\n1,2,0.1,0.9,,1\n2,4,0.1,0.7,nan,2\n3,6,0.1,0.6,0.5,3\n"
    )
    assert "data:image/png;base64," in _curves(RunFolder(tmp_path))  # an empty cell used to raise ValueError
    (tmp_path / "metrics.csv").write_text("epoch,step,lr,train_loss,seconds\n1,2,0.1,0.9,1\n")
    assert "data:image/png;base64," in _curves(RunFolder(tmp_path))  # no val_ column used to raise StopIteration
