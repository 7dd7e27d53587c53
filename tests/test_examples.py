"""Fine-tuning and retrieval examples: their numerical pieces against hand-built cases, and a smoke
run of each script on a synthetic IDX data set (the real runs and their tables: docs/examples.md)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from _helpers import write_fake_mnist
from test_api import _example


# -- retrieval ----------------------------------------------------------------------------------------

def test_neighbours_and_precision_on_a_hand_built_case():
    ret = _example("retrieval")
    # two tight clusters along different axes: each point's neighbours are its own cluster
    feats = torch.tensor([[10.0, 0.1], [10.0, 0.2], [10.0, 0.0], [0.1, 10.0], [0.2, 10.0], [0.0, 10.0]])
    idx = ret.neighbours(feats, k=2)
    assert idx.shape == (6, 2)
    assert all(i not in row.tolist() for i, row in enumerate(idx))          # never itself
    assert all(set(row.tolist()) <= ({0, 1, 2} if i < 3 else {3, 4, 5}) for i, row in enumerate(idx))
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert ret.precision_at_k(idx, labels) == 100.0
    # by hand: query 0 has neighbours [1 (same), 3 (other)], query 1 [0 (same), 0 (same)] -> 3 of 4
    assert ret.precision_at_k(torch.tensor([[1, 3], [0, 0]]), labels) == 75.0
    groups = ret.level_groups(list(range(1, 9)))
    assert groups["fine"] == [1, 2] and groups["coarse"] == [7, 8] and groups["middle"] == [3, 4, 5, 6]


def test_retrieval_script(tmp_path):
    root = write_fake_mnist(tmp_path / "mnist")
    ret = _example("retrieval")
    assert ret.main(["--data", str(root), "--random-weights", "--k", "3", "--out", str(tmp_path / "r.png"),
                     "--queries", "2", "--show", "3", "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert set(res["precision_at_k"]) >= {"pixels", "level 1", "level 8", "fine", "coarse", "all"}
    assert all(0 <= v <= 100 for v in res["precision_at_k"].values())
    # the synthetic classes are bright squares at fixed places: raw pixels retrieve them perfectly
    assert res["precision_at_k"]["pixels"] == 100.0
    assert Image.open(tmp_path / "r.png").size == (4 * 34 + 2, 3 * 2 * 34 + 2)   # 3 groups x 2 queries


# -- fine-tuning a classifier ------------------------------------------------------------------------

def test_balanced_subset():
    ft = _example("finetune_classifier")
    labels = torch.arange(1000) % 10
    idx = ft.balanced_subset(labels, 100, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert torch.bincount(labels[idx], minlength=10).tolist() == [10] * 10
    assert torch.equal(idx, ft.balanced_subset(labels, 100, seed=0))
    assert not torch.equal(idx, ft.balanced_subset(labels, 100, seed=1))
    assert len(ft.balanced_subset(labels, 5000, seed=0)) == 1000                # more than there are: all
    with pytest.raises(ValueError, match="at least one label per class"):
        ft.balanced_subset(labels, 5, seed=0)


def test_classifier_head_sees_all_levels():
    import ghfeat
    ft = _example("finetune_classifier")
    model = ft.GHFeatClassifier(ghfeat.create_encoder("mnist32"))
    assert model.fc.in_features == 2 * 32 + 6 * 64                               # mnist32 level widths
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_finetune_classifier_script(tmp_path):
    root = write_fake_mnist(tmp_path / "mnist", n=40)
    ft = _example("finetune_classifier")
    assert ft.main(["--data", str(root), "--random-weights", "--labels", "20", "--steps", "2", "--epochs", "0",
                    "--limit", "20", "--json", str(tmp_path / "f.json"), "--plot", str(tmp_path / "f.png")]) == 0
    res = json.loads((tmp_path / "f.json").read_text())
    assert set(res["top1"]["20"]) == {"frozen", "finetune", "scratch"}
    assert all(0 <= v <= 100 for v in res["top1"]["20"].values())
    assert Image.open(tmp_path / "f.png").size[0] > 100


def test_frozen_mode_leaves_the_encoder_unchanged():
    import ghfeat
    ft = _example("finetune_classifier")
    torch.manual_seed(0)
    model = ft.GHFeatClassifier(ghfeat.create_encoder("mnist32"))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    x = torch.randint(0, 256, (16, 32, 32), dtype=torch.uint8)
    y = torch.arange(16) % 10
    head0 = model.fc.weight.clone()
    ft.train(model, "frozen", x, y, steps=3, lr=1e-2, batch_size=8, seed=0, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())   # BN stats too
    assert not torch.equal(head0, model.fc.weight)
    ft.train(model, "finetune", x, y, steps=1, lr=1e-2, batch_size=8, seed=0, progress=False)
    assert any(not torch.equal(before[k], v) for k, v in model.encoder.state_dict().items())


# -- fine-tuning the encoder ---------------------------------------------------------------------------

@pytest.mark.slow   # a training run (the trainer, a GAN discriminator, PNG export); deselected by default
def test_finetune_encoder_script(tmp_path):
    root = write_fake_mnist(tmp_path / "mnist", n=24)
    ft = _example("finetune_encoder")
    out = tmp_path / "ft.json"
    assert ft.main(["--from-idx", str(root), "--n-train", "16", "--n-eval", "4", "--run-dir", str(tmp_path / "run"),
                    "--steps", "2", "--batch-size", "4", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_eval"] == 4 and np.isfinite(res["mse_before"]) and np.isfinite(res["mse_after"])
    assert len(list((tmp_path / "run_data" / "train").glob("*.png"))) == 16
    assert Image.open(tmp_path / "run" / "finetune.png").size == (4 * 34 + 2, 3 * 34 + 2)
    assert (tmp_path / "run" / "encoder" / "model.safetensors").is_file()


# -- editing directions --------------------------------------------------------------------------------

def test_attribute_measures_on_drawn_strokes():
    ed = _example("editing_directions")
    widths = []
    for w in (2, 3, 4, 6):                      # a vertical bar 22 px tall, w px wide
        x = -torch.ones(1, 1, 32, 32)
        x[0, 0, 5:27, 10:10 + w] = 1
        widths.append(float(ed.measure(x, "thickness")))
    # by hand: area w*22 over half the one-pixel boundary (2w + 2*22 - 4) / 2 = w + 20
    assert widths == pytest.approx([w * 22 / (w + 20) for w in (2, 3, 4, 6)], rel=1e-6)
    x = -torch.ones(1, 1, 32, 32)
    for y in range(4, 28):                      # a line leaning right at the top: x = 16 + (16 - y) / 2
        c = int(round(16 + 0.5 * (16 - y)))
        x[0, 0, y, c:c + 2] = 1
    assert float(ed.measure(x, "slant")) == pytest.approx(0.5, abs=0.02)
    assert float(ed.measure(torch.flip(x, [3]), "slant")) == pytest.approx(-0.5, abs=0.02)
    with pytest.raises(ValueError, match="unknown attribute"):
        ed.measure(x, "colour")


def test_editing_directions_script(tmp_path):
    root = write_fake_mnist(tmp_path / "mnist", n=30)
    ed = _example("editing_directions")
    assert ed.main(["--data", str(root), "--random-weights", "--n-fit", "30", "--n-eval", "10", "--n-show", "2",
                    "--strengths", "-2", "0", "2", "--sefa-levels", "4", "--out-dir", str(tmp_path / "e"),
                    "--json", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert [r["strength"] for r in res["edits"]] == [-2, 0, 2] and res["levels"] == list(range(1, 9))
    assert Image.open(tmp_path / "e" / "supervised_thickness.png").size == (3 * 34 + 2, 2 * 34 + 2)
    assert (tmp_path / "e" / "sefa_level4.png").is_file()


@pytest.mark.parametrize("name", ["editing_directions", "extract_features", "fewshot_segmentation",
                                  "finetune_classifier", "finetune_encoder", "linear_probe", "retrieval",
                                  "style_mixing"])
def test_example_help_shows_defaults(name, capsys):
    """Every example's ``--help`` renders and shows its defaults, also for options without help text."""
    with pytest.raises(SystemExit) as exit_:
        _example(name).main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0 and "usage:" in text and "default: " in text, text
    assert "(default: None)" not in text and "(default: False)" not in text
    if name == "editing_directions":                          # --out-dir and --attribute have no help text
        assert "--out-dir OUT_DIR default: edits" in text and "default: thickness" in text, text
