"""Attribution: where in the image a backbone's evidence comes from, and how it moves.

A robust backbone should not only keep its embedding under a corruption or an occlusion; it
should keep looking at the same part of the image, and at the object rather than at the
background. This package makes attribution maps -- non-negative maps over the input
pixels that sum to 1 -- and measures on them:

* :func:`attribution_maps` with ``method="gradcam"`` runs Grad-CAM through the
  pytorch-grad-cam library (CNNs on their last feature stage, ViTs on the last block with
  a token-to-grid reshape). What it explains is a :class:`Target`: a class logit through a
  head, or, label-free, the similarity of the embedding to a reference embedding such as
  the clean image's.
* ``method="rollout"`` is attention rollout (Abnar & Zuidema, 2020) for ViTs. The library
  does not provide it, so it is written here, in a few lines; it is class-agnostic.
* :func:`foreground_focus` (share of the evidence on the object), :func:`focus_shift`
  (rank correlation and top-k overlap between clean and altered maps) and :func:`entropy`
  (how spread out the evidence is) reduce maps to one number per image.
* :func:`attribution_set` (``sslrobust.attribution(...)`` in a test) makes the maps of a
  dataset variant through the run's backbone and readout, cached like features.
"""

from __future__ import annotations

from pytest_sslrobust.attribution.maps import (
    METHODS,
    Maps,
    Target,
    attribution_maps,
    target_layer,
)
from pytest_sslrobust.attribution.measures import entropy, focus_shift, foreground_focus
from pytest_sslrobust.attribution.sets import AttributionSet, attribution_set, overlay

__all__ = [
    "METHODS",
    "AttributionSet",
    "Maps",
    "Target",
    "attribution_maps",
    "attribution_set",
    "entropy",
    "focus_shift",
    "foreground_focus",
    "overlay",
    "target_layer",
]
