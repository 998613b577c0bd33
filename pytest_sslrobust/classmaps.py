"""Label-space mappings between a classifier head and a dataset: which head classes make each
dataset class. Standard library only.

ImageNet-9 (Xiao et al. 2020, the backgrounds challenge) groups ImageNet-1k classes into nine
superclasses; its code maps a 1000-way prediction to nine through a table of ImageNet class
indices (``in_to_in9.json``), with the other 630 classes counted as wrong. The table below is
that one, as index ranges (inclusive), in the order of the released folders
(``00_dog`` ... ``08_fish``).
"""

from __future__ import annotations

import functools

IMAGENET_1K = "imagenet-1k"
IMAGENET_9 = "imagenet-9"

# superclass -> ImageNet-1k class index ranges (inclusive)
IN9_SUPERCLASSES: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("dog", ((151, 170), (173, 268))),
    ("bird", ((7, 24), (87, 100), (127, 146))),
    (
        "wheeled vehicle",
        tuple(
            (i, i)
            for i in (
                407, 408, 428, 436, 444, 468, 511, 547, 555, 561, 565, 569, 573, 586, 603,
                609, 612, 627, 656, 661, 665, 670, 671, 675, 690, 705, 717, 734, 751, 757,
                791, 802, 803, 817, 820, 829, 847, 864, 866, 867, 870, 880,
            )
        ),
    ),
    ("reptile", ((33, 68),)),
    ("carnivore", ((269, 280), (286, 299), (356, 362), (387, 388))),
    ("insect", ((300, 326),)),
    (
        "musical instrument",
        tuple(
            (i, i)
            for i in (
                401, 402, 420, 432, 486, 494, 513, 541, 546, 558, 566, 577, 579, 593, 594,
                641, 642, 683, 684, 687, 699, 776, 822, 875, 881, 889,
            )
        ),
    ),
    ("primate", ((365, 384),)),
    ("fish", ((0, 6), (389, 397))),
)  # fmt: skip


@functools.cache
def label_map(head_space: str | None, data_space: str | None) -> tuple[int, ...] | None:
    """For each head class, the dataset class it counts as (-1: none), or None when the head
    does not map onto the data (the same label space needs no map)."""
    if (head_space, data_space) != (IMAGENET_1K, IMAGENET_9):
        return None
    mapping = [-1] * 1000
    for target, (_, ranges) in enumerate(IN9_SUPERCLASSES):
        for first, last in ranges:
            for index in range(first, last + 1):
                mapping[index] = target
    return tuple(mapping)
