"""The bundled backbones: committed weights match their documented fingerprints, they load
offline, and the script that trained them still runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pytest_sslrobust.backbones.base import BackboneError
from pytest_sslrobust.backbones.loading import BUNDLED_WEIGHTS, file_sha256, load_backbone
from pytest_sslrobust.backbones.registry import BackboneAlias, get_alias

DOC = Path(__file__).resolve().parents[1] / "docs" / "bundled-models.md"
BUNDLED = ("bundled-simclr", "bundled-vicreg", "bundled-supervised")
_ROW = re.compile(
    r"^\|\s*`(?P<name>bundled-[a-z]+)`\s*\|\s*`(?P<sha>[0-9a-f]{64})`\s*\|\s*`(?P<fp>[0-9a-f]{64})`"
)


def _documented() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            rows[match["name"]] = (match["sha"], match["fp"])
    return rows


def test_docs_list_every_bundled_model():
    assert set(_documented()) == set(BUNDLED), DOC


@pytest.mark.parametrize("name", BUNDLED)
def test_committed_file_matches_documented_and_registered_digest(name):
    path = BUNDLED_WEIGHTS / f"{name}.safetensors"
    documented_sha, _ = _documented()[name]
    assert path.stat().st_size < 4 * 2**20, "bundled weights must stay a few MB"
    assert file_sha256(path) == documented_sha
    alias = get_alias(name)
    assert alias is not None and alias.sha256 == documented_sha


@pytest.mark.parametrize("name", BUNDLED)
def test_loads_offline_with_documented_fingerprint(name):
    backbone = load_backbone(name)
    _, documented_fingerprint = _documented()[name]
    assert backbone.fingerprint == documented_fingerprint
    assert backbone.preprocessing.input_size == 64
    features, logits = backbone.forward(torch.zeros(2, 3, 64, 64))
    assert features.shape == (2, 96)
    if name == "bundled-supervised":
        assert logits is not None and logits.shape == (2, 10)
        assert backbone.label_space == "bundled:textured-digits"
    else:
        assert logits is None and backbone.label_space is None


def test_paradigms_are_registered():
    assert "contrastive" in get_alias("bundled-simclr").paradigm
    assert "redundancy reduction" in get_alias("bundled-vicreg").paradigm
    assert get_alias("bundled-supervised").paradigm == "supervised"


def test_damaged_file_is_refused(tmp_path, monkeypatch):
    source = BUNDLED_WEIGHTS / "bundled-simclr.safetensors"
    damaged = tmp_path / "bundled-simclr.safetensors"
    data = bytearray(source.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr("pytest_sslrobust.backbones.loading.BUNDLED_WEIGHTS", tmp_path)
    with pytest.raises(BackboneError, match="sha256"):
        load_backbone("bundled-simclr")


def test_missing_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("pytest_sslrobust.backbones.loading.BUNDLED_WEIGHTS", tmp_path)
    with pytest.raises(BackboneError, match="reinstall|retrain"):
        load_backbone("bundled-supervised")


def test_unregistered_digest_is_not_checked_but_keys_are(tmp_path, monkeypatch):
    """An alias without a digest (a user's retrained file) loads, but a file of another
    architecture is refused naming the keys."""
    from pytest_sslrobust.backbones import loading

    alias = BackboneAlias(
        "bundled-simclr",
        "test_resnet",
        weights="bundled",
        input_size=64,
        extra=(("output_stride", 8), ("num_classes", 0)),
        sha256=None,
    )
    backbone = loading._bundled(alias)
    assert backbone.fingerprint
    wrong = BackboneAlias("bundled-simclr", "resnet18", weights="bundled", input_size=64)
    with pytest.raises(BackboneError, match="does not fit resnet18"):
        loading._bundled(wrong)


@pytest.mark.parametrize("paradigm", ["simclr", "vicreg", "supervised"])
def test_training_script_runs_a_few_steps(tmp_path, paradigm):
    out = tmp_path / f"{paradigm}.safetensors"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_sslrobust.backbones.training",
            paradigm,
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--limit",
            "64",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"{paradigm}: step 2/2" in completed.stderr
    from safetensors import safe_open

    with safe_open(str(out), "pt") as handle:
        metadata = handle.metadata()
        keys = set(handle.keys())
    assert metadata["steps"] == "2" and metadata["architecture"] == "test_resnet"
    assert ("fc.weight" in keys) == (paradigm == "supervised")
    # The projection head (SimCLR) or expander (VICReg) is not part of the backbone: the
    # file holds exactly the architecture's tensors.
    from pytest_sslrobust.backbones.training import build_model

    expected = set(build_model(10 if paradigm == "supervised" else 0).state_dict())
    assert keys == expected


def test_nt_xent_matches_an_independent_computation():
    from pytest_sslrobust.backbones.training import nt_xent

    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / 0.5
    losses = []
    for i in range(8):
        positive = (i + 4) % 8
        others = [j for j in range(8) if j != i]
        losses.append(-sim[i, positive] + torch.logsumexp(sim[i, others], dim=0))
    assert torch.allclose(nt_xent(z1, z2, 0.5), torch.stack(losses).mean(), atol=1e-6)
