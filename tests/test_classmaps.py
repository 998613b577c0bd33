"""ImageNet-1k heads read out on ImageNet-9: the backgrounds challenge's superclass table,
predictions mapped to the nine classes, gradients through superclass logits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_sslrobust.classmaps import IMAGENET_1K, IMAGENET_9, IN9_SUPERCLASSES, label_map
from pytest_sslrobust.data.sources import in9
from pytest_sslrobust.evaluate import Readout, SuperclassLogits, head_applies


def test_the_table_has_the_released_sizes_and_no_overlap() -> None:
    mapping = label_map(IMAGENET_1K, IMAGENET_9)
    assert mapping is not None and len(mapping) == 1000
    sizes = [mapping.count(target) for target in range(9)]
    # in_to_in9.json of the backgrounds challenge: 370 ImageNet classes in nine superclasses.
    assert sizes == [116, 52, 42, 36, 35, 27, 26, 20, 16]
    assert mapping.count(-1) == 630
    assert mapping[0] == 8 and mapping[151] == 0 and mapping[171] == -1 and mapping[999] == -1
    assert [name for name, _ in IN9_SUPERCLASSES][:2] == ["dog", "bird"]
    assert label_map(IMAGENET_1K, IMAGENET_1K) is None and label_map(None, IMAGENET_9) is None


def test_in9_with_the_released_folder_names_is_imagenet_9(tmp_path: Path) -> None:
    for index, (name, _) in enumerate(IN9_SUPERCLASSES):
        folder = tmp_path / "original" / "val" / f"{index:02d}_{name}"
        folder.mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    assert in9(tmp_path).label_space == IMAGENET_9
    (tmp_path / "original" / "val" / "08_fish").rename(tmp_path / "original" / "val" / "08_eel")
    assert in9(tmp_path).label_space is None  # other classes: no map, a probe reads them out


def test_a_1000_way_head_predicts_superclasses_and_other_classes_count_as_wrong() -> None:
    classifier = torch.nn.Linear(4, 1000)
    backbone = SimpleNamespace(
        has_head=True,
        label_space=IMAGENET_1K,
        model=SimpleNamespace(get_classifier=lambda: classifier),
        num_classes=1000,
        device=torch.device("cpu"),
    )
    store = SimpleNamespace(backbone=backbone, dataset=SimpleNamespace(label_space=IMAGENET_9))
    assert head_applies(backbone, store.dataset)
    readout = Readout(store, "auto")  # type: ignore[arg-type]
    assert readout.kind == "head" and readout.params["label_map"] == "imagenet-1k->imagenet-9"
    logits = torch.full((3, 1000), -5.0)
    logits[0, 200], logits[1, 2], logits[2, 500] = 9.0, 9.0, 9.0  # a dog, a fish, a non-IN-9 class
    predicted = readout.predict(SimpleNamespace(logits=logits))  # type: ignore[arg-type]
    assert predicted.tolist() == [0, 8, 9]  # 9: none of the nine, wrong for every label

    module, classes = readout.head_module()
    assert classes.tolist() == list(range(9))
    features = torch.randn(2, 4, requires_grad=True)
    pooled = module(features)
    assert pooled.shape == (2, 9)
    expected = torch.logsumexp(
        classifier(features)[:, [i for i in range(151, 171)] + list(range(173, 269))], dim=1
    )
    assert torch.allclose(pooled[:, 0], expected)
    pooled[:, 0].sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_superclass_logits_ignore_unmapped_classes() -> None:
    pool = SuperclassLogits((0, -1, 1, 0))
    out = pool(torch.tensor([[1.0, 100.0, 2.0, 3.0]]))
    assert torch.allclose(out, torch.tensor([[np.logaddexp(1.0, 3.0), 2.0]], dtype=torch.float32))


def test_imagenet_r_style_subset_restricts_a_1000_way_head(tmp_path: Path) -> None:
    from pytest_sslrobust.data.base import DataError
    from pytest_sslrobust.data.sources import imagenet_wnids
    from pytest_sslrobust.data.specs import load_dataset

    wnids = imagenet_wnids()
    for wnid in (wnids[1], wnids[5]):
        folder = tmp_path / "r" / wnid
        folder.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i}.png")
    data = load_dataset(f"imagefolder:{tmp_path / 'r'},classes=present")
    assert (
        data.head_subset == (1, 5)
        and load_dataset(f"imagefolder:{tmp_path / 'r'}").head_subset is None
    )
    classifier = torch.nn.Linear(4, 1000)
    backbone = SimpleNamespace(
        has_head=True,
        label_space=IMAGENET_1K,
        model=SimpleNamespace(get_classifier=lambda: classifier),
        num_classes=1000,
        device=torch.device("cpu"),
    )
    readout = Readout(SimpleNamespace(backbone=backbone, dataset=data), "auto")  # type: ignore[arg-type]
    assert readout.kind == "head" and readout.params["head_subset"].startswith("2 classes")
    logits = torch.zeros(2, 1000)
    logits[0, 900], logits[0, 5] = 9.0, 1.0  # the overall top class is not among the 200
    logits[1, 1] = 2.0
    assert readout.predict(SimpleNamespace(logits=logits)).tolist() == [5, 1]  # type: ignore[arg-type]
    module, classes = readout.head_module()
    assert classes.tolist() == [1, 5] and module(torch.zeros(3, 4)).shape == (3, 2)
    (tmp_path / "plain" / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "plain" / "cat" / "a.png")
    with pytest.raises(DataError, match="classes=present needs ImageNet wnid class folders"):
        load_dataset(f"imagefolder:{tmp_path / 'plain'},classes=present")
    with pytest.raises(DataError, match="the only value is 'present'"):
        load_dataset(f"imagefolder:{tmp_path / 'r'},classes=all")


def test_imagenet_training_images_fit_a_nine_way_probe_for_imagenet_9() -> None:
    from pytest_sslrobust.evaluate import relabelled
    from pytest_sslrobust.features.store import FeatureSet

    # ImageNet labels 151 (a dog), 7 (a bird), 500 (no superclass), 0 (a fish)
    train = FeatureSet(
        features=torch.arange(8.0).reshape(4, 2),
        logits=None,
        labels=torch.tensor([151, 7, 500, 0]),
        ids=("a", "b", "c", "d"),
        split="train",
        variant="original",
        key="k",
        protocol={"data": "imagefolder:x"},
    )
    source = SimpleNamespace(label_space=IMAGENET_1K, spec="imagefolder:x", classes=())
    target = SimpleNamespace(label_space=IMAGENET_9, spec="in9:y", classes=())
    fitted_on = relabelled(train, source, target)
    assert fitted_on.labels.tolist() == [0, 1, 8] and fitted_on.ids == ("a", "b", "d")
    assert fitted_on.features.tolist() == [[0.0, 1.0], [2.0, 3.0], [6.0, 7.0]]
