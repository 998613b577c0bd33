"""The 19 ImageNet-C corruptions as batched torch operations, on the CPU or a GPU.

``corrupt_batch`` takes a batch of uint8 images (B, 3, H, W) on any device and returns the
corrupted batch on that device, with imagecorruptions' parameter tables (the severity
constants of ``imagecorruptions.corruptions``). The recipes follow imagecorruptions'; where
one of its steps has no batched equivalent the step is approximated, and the published
fidelity table (``docs/corruption-backends.md``, ``benchmarks/bench_torch_corruptions.py``)
says how far each corruption lands from the reference:

- glass blur follows imagecorruptions' sequential walk exactly in what each pixel ends up
  with (a chain of copies resolved by pointer jumping); only the random draws differ.
- spatter (severities 1-3): OpenCV's Canny edges, L2 distance transform and histogram
  equalisation become a Sobel edge map thinned to its maxima across the gradient with one
  step of hysteresis, a chessboard distance truncated at 20 by repeated 3x3 dilation, and a
  per-image equalisation of that distance.
- zoom blur and snow use bilinear interpolation for scipy's order-1 zoom, frost bicubic for
  OpenCV's.

Randomness: every random draw of an image comes from a CPU ``torch.Generator`` seeded with
that image's seed, drawn in a fixed order, then moved to the device. The same seed gives
the same draws whatever the batch size, order or device; on the CPU images are corrupted
one at a time, so the output bytes are the same for any batch size or order (tested). On CUDA
the batch runs at once; there the draws are the same but float arithmetic (convolutions,
interpolation, cuDNN's choice of algorithm) may differ from the CPU's and between batch
sizes in the last bits, so a pixel can round to a neighbouring value: CUDA output is not
bit-identical to the CPU's, and its run-to-run stability has not been measured here (no GPU
on the build machine).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pytest_sslrobust.vocabulary import TORCH_BACKEND_VERSION as BACKEND_VERSION

__all__ = ["BACKEND_VERSION", "corrupt_batch", "corrupt_image"]


_GRAY = (0.299, 0.587, 0.114)  # OpenCV's RGB2GRAY weights


def corrupt_batch(
    images: torch.Tensor, name: str, severity: int, seeds: Sequence[int]
) -> torch.Tensor:
    """Corrupt a batch: uint8 (B, 3, H, W) in, uint8 (B, 3, H, W) out, on ``images``' device.

    Args:
        images: uint8 tensor, both sides at least 32 pixels.
        name: one of the 19 corruption names.
        severity: 1..5.
        seeds: one non-negative integer per image; image i's random draws depend on
            ``seeds[i]`` alone.

    Example:
        >>> batch = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
        >>> out = corrupt_batch(batch, "gaussian_noise", 3, seeds=[0, 1])
        >>> out.shape, out.dtype, torch.equal(out[1:], corrupt_batch(batch[1:], "gaussian_noise", 3, [1]))
        (torch.Size([2, 3, 32, 32]), torch.uint8, True)
    """
    from pytest_sslrobust.variants.base import VariantError
    from pytest_sslrobust.vocabulary import check_corruption, check_severity

    check_corruption(name)
    severity = check_severity(severity)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise VariantError(
            f"corrupt_batch expects a uint8 (B, 3, H, W) tensor, got dtype {images.dtype} "
            f"shape {tuple(images.shape)}"
        )
    if min(images.shape[2:]) < 32:
        raise VariantError(
            f"{name} needs images of at least 32x32 pixels, got {images.shape[2]}x"
            f"{images.shape[3]}: corrupt at the model's input resolution"
        )
    if len(seeds) != images.shape[0]:
        raise VariantError(f"expected {images.shape[0]} seeds, one per image, got {len(seeds)}")
    if images.device.type == "cpu" and images.shape[0] > 1:
        # One image at a time on the CPU: oneDNN may pick another convolution algorithm for
        # another batch size, and a rounding step (glass blur, spatter, snow) would turn its
        # last-bit differences into other bytes. On a GPU the batch runs at once.
        return torch.cat(
            [_corrupt(images[i : i + 1], name, severity, [seeds[i]]) for i in range(len(seeds))]
        )
    return _corrupt(images, name, severity, seeds)


def _corrupt(images: torch.Tensor, name: str, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    generators = [torch.Generator().manual_seed(int(s) % (2**63)) for s in seeds]
    x = images.float() / 255.0
    out = _CORRUPTIONS[name](x, severity - 1, generators)
    # imagecorruptions returns floats in [0, 255] that the harness truncates to uint8.
    return (out.clamp(0, 1) * 255).to(torch.uint8)


def corrupt_image(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """One uint8 HxWx3 image through :func:`corrupt_batch` on the CPU (same bytes as in any
    batch)."""
    batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
    out = corrupt_batch(batch, name, severity, [seed])
    return out[0].permute(1, 2, 0).contiguous().numpy()


# --------------------------------------------------------------------------- helpers


def _draw(
    generators: Sequence[torch.Generator],
    device: torch.device,
    draw: Callable[[torch.Generator], torch.Tensor],
) -> torch.Tensor:
    """Stack one CPU draw per image (its own generator) and move the stack to ``device``."""
    return torch.stack([draw(g) for g in generators]).to(device)


def _uniform(
    g: torch.Generator, low: float, high: float, shape: tuple[int, ...] = ()
) -> torch.Tensor:
    return torch.rand(shape, generator=g) * (high - low) + low


def _gaussian_kernel1d(sigma: float, truncate: float, device: torch.device) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def _separable(x: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every channel of (B, C, H, W) with ky (rows) then kx (columns)."""
    channels = x.shape[1]
    ry, rx = ky.numel() // 2, kx.numel() // 2
    x = F.pad(x, (0, 0, ry, ry), mode=mode)
    x = F.conv2d(x, ky.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    x = F.pad(x, (rx, rx, 0, 0), mode=mode)
    return F.conv2d(x, kx.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)


def _gaussian(
    x: torch.Tensor,
    sigma: float | tuple[float, float],
    *,
    truncate: float = 4.0,
    mode: str = "replicate",
) -> torch.Tensor:
    """scikit-image's ``gaussian`` (default mode 'nearest' = replicate padding)."""
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    ky = _gaussian_kernel1d(float(sy), truncate, x.device)
    kx = _gaussian_kernel1d(float(sx), truncate, x.device)
    return _separable(x, ky, kx, mode)


def _gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_GRAY, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """scikit-image's rgb2hsv on (B, 3, H, W) in [0, 1]."""
    r, g, b = x.unbind(1)
    value, _ = x.max(1)
    delta = value - x.min(1).values
    saturation = torch.where(value > 0, delta / value.clamp_min(1e-12), torch.zeros_like(value))
    safe = delta.clamp_min(1e-12)
    hue = torch.where(
        value == r,
        (g - b) / safe,
        torch.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe),
    )
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, saturation, value], 1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    i = i.long() % 6
    choices = [
        torch.stack(c, 1)
        for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    out = torch.zeros_like(hsv)
    for k, rgb in enumerate(choices):
        out = torch.where((i == k).unsqueeze(1), rgb, out)
    return out


def _clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Centre crop of 1/factor, zoomed back (order-1, corners aligned as scipy's zoom), cut to
    the input's size."""
    height, width = x.shape[-2:]
    ch, cw = math.ceil(height / factor), math.ceil(width / factor)
    top, left = (height - ch) // 2, (width - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    size = (round(ch * factor), round(cw * factor))
    zoomed = F.interpolate(crop, size=size, mode="bilinear", align_corners=True)
    return zoomed[..., :height, :width]


def _motion_offsets(radius: int, angle: float) -> list[tuple[int, int]]:
    width = 2 * radius + 1
    point = (width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle)))
    hypot = math.hypot(*point)
    return [
        (-math.ceil(i * point[0] / hypot - 0.5), -math.ceil(i * point[1] / hypot - 0.5))
        for i in range(width)
    ]


def _motion_blur(x: torch.Tensor, radius: int, sigma: float, angle: float) -> torch.Tensor:
    """imagecorruptions' motion blur of one image (C, H, W): Gaussian-weighted shifts along
    ``angle``, edges replicated, stopping where a shift leaves the image."""
    width = 2 * radius + 1
    weights = torch.exp(-(torch.arange(width, dtype=torch.float32) ** 2) / (2 * sigma**2))
    weights = (weights / weights.sum()).tolist()
    height, wide = x.shape[-2:]
    pad = width
    padded = F.pad(x.unsqueeze(0), (pad, pad, pad, pad), mode="replicate")[0]
    out = torch.zeros_like(x)
    for weight, (dy, dx) in zip(weights, _motion_offsets(radius, angle), strict=True):
        if abs(dy) >= height or abs(dx) >= wide:
            break
        out += weight * padded[:, pad - dy : pad - dy + height, pad - dx : pad - dx + wide]
    return out


# --------------------------------------------------------------------------- noise


def _gaussian_noise(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[s]
    noise = _draw(gens, x.device, lambda g: torch.randn(x.shape[1:], generator=g))
    return x + noise * c


def _shot_noise(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    c = (60, 25, 12, 5, 3)[s]
    rates = (x * c).cpu()
    counts = torch.stack([torch.poisson(rates[i], generator=g) for i, g in enumerate(gens)])
    return counts.to(x.device) / c


def _impulse_noise(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[s]
    draws = _draw(gens, x.device, lambda g: torch.rand((2, *x.shape[1:]), generator=g))
    flipped, salt = draws[:, 0] < amount, draws[:, 1] < 0.5
    return torch.where(flipped, salt.float(), x)


def _speckle_noise(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    c = (0.15, 0.2, 0.35, 0.45, 0.6)[s]
    noise = _draw(gens, x.device, lambda g: torch.randn(x.shape[1:], generator=g))
    return x + x * noise * c


# --------------------------------------------------------------------------- blur


def _gaussian_blur(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    return _gaussian(x, (1, 2, 3, 4, 6)[s])


def _glass_blur(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    sigma, delta, iterations = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))[s]
    x = torch.floor(_gaussian(x, sigma) * 255) / 255  # imagecorruptions' np.uint8 step
    batch, _, height, width = x.shape
    size = height * width
    rows = torch.arange(height, device=x.device).view(1, -1, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, -1)
    # Only pixels at least `delta` from the border move, as in imagecorruptions' loop.
    inner = (rows > delta) & (rows <= height - delta) & (cols > delta) & (cols <= width - delta)
    offsets = torch.arange(batch, device=x.device).view(-1, 1, 1) * size
    everywhere = torch.arange(batch * size, device=x.device)
    for _ in range(iterations):
        shifts = _draw(
            gens, x.device, lambda g: torch.randint(-delta, delta, (2, height, width), generator=g)
        )
        dy, dx = shifts[:, 0], shifts[:, 1]
        src = torch.where(inner, rows + dy, rows) * width + torch.where(inner, cols + dx, cols)
        # imagecorruptions walks from the bottom-right corner and each pixel takes the value
        # now at its source (its "swap" assigns through views, so it copies): a source the
        # walk has already passed (below, or right on the same row) holds its own source's
        # value, and so on. Following that chain to its end (pointer jumping) gives every
        # pixel the original value the sequential walk would give it.
        passed = ((dy > 0) | ((dy == 0) & (dx > 0))) & inner & inner.flatten()[src]
        src = (src + offsets).flatten()
        chain = torch.where(passed.flatten(), src, everywhere)
        while True:
            jumped = chain[chain]
            if torch.equal(jumped, chain):
                break
            chain = jumped
        pixels = x.permute(0, 2, 3, 1).reshape(batch * size, 3)[src[chain]]
        x = pixels.view(batch, height, width, 3).permute(0, 3, 1, 2)
    return _gaussian(x.contiguous(), sigma)


@functools.lru_cache(maxsize=8)
def _disk(radius: int, alias_blur: float) -> torch.Tensor:
    size = 8 if radius <= 8 else radius
    ksize = 3 if radius <= 8 else 5
    offsets = torch.arange(-size, size + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).float()
    disk /= disk.sum()
    # OpenCV's GaussianBlur of the kernel: ksize taps, sigma alias_blur, reflect-101 border.
    taps = torch.arange(ksize, dtype=torch.float32) - (ksize - 1) / 2
    gauss = torch.exp(-(taps**2) / (2 * alias_blur**2))
    gauss /= gauss.sum()
    return _separable(disk.view(1, 1, *disk.shape), gauss, gauss, "reflect")[0, 0]


def _defocus_blur(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    radius, alias_blur = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))[s]
    kernel = _disk(radius, alias_blur).to(x.device)
    pad = kernel.shape[0] // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # OpenCV's default border
    return F.conv2d(padded, kernel.view(1, 1, *kernel.shape).expand(3, 1, -1, -1), groups=3)


def _motion_blur_corruption(
    x: torch.Tensor, s: int, gens: Sequence[torch.Generator]
) -> torch.Tensor:
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[s]
    angles = [float(_uniform(g, -45, 45)) for g in gens]
    return torch.stack([_motion_blur(x[i], radius, sigma, a) for i, a in enumerate(angles)])


def _zoom_blur(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    factors = (
        np.arange(1, 1.11, 0.01),
        np.arange(1, 1.16, 0.01),
        np.arange(1, 1.21, 0.02),
        np.arange(1, 1.26, 0.02),
        np.arange(1, 1.31, 0.03),
    )[s]
    out = x.clone()
    for factor in factors:
        out += _clipped_zoom(x, float(factor))
    return out / (len(factors) + 1)


# --------------------------------------------------------------------------- weather


def _plasma(g: torch.Generator, mapsize: int, decay: float) -> torch.Tensor:
    """The diamond-square height map of imagecorruptions' fog, in [0, 1]."""
    grid = torch.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled(values: torch.Tensor) -> torch.Tensor:
        return values / 4 + wibble * _uniform(g, -wibble, wibble, tuple(values.shape))

    while step >= 2:
        half = step // 2
        corners = grid[0::step, 0::step]
        squares = corners + corners.roll(-1, 0)
        squares = squares + squares.roll(-1, 1)
        grid[half::step, half::step] = wibbled(squares)
        centres = grid[half::step, half::step]
        corners = grid[0::step, 0::step]
        grid[0::step, half::step] = wibbled(
            centres + centres.roll(1, 0) + corners + corners.roll(-1, 1)
        )
        grid[half::step, 0::step] = wibbled(
            centres + centres.roll(1, 1) + corners + corners.roll(-1, 0)
        )
        step, wibble = half, wibble / decay
    grid -= grid.min()
    return grid / grid.max()


def _fog(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    strength, decay = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))[s]
    height, width = x.shape[-2:]
    mapsize = 1 << (max(height, width) - 1).bit_length()
    maps = _draw(gens, x.device, lambda g: _plasma(g, mapsize, decay)[:height, :width])
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * maps.unsqueeze(1)) * peak / (peak + strength)


@functools.lru_cache(maxsize=1)
def _frost_images() -> tuple[torch.Tensor, ...]:
    """The six frost photographs that imagecorruptions ships, RGB float (3, H, W) in 0..255."""
    import importlib.resources

    from PIL import Image

    names = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
    images = []
    for name in names:
        ref = importlib.resources.files("imagecorruptions") / "frost" / name
        with importlib.resources.as_file(ref) as path, Image.open(path) as picture:
            array = np.asarray(picture.convert("RGB"), dtype=np.float32)
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return tuple(images)


@functools.lru_cache(maxsize=32)
def _frost_rescaled(index: int, height: int, width: int) -> torch.Tensor:
    frost = _frost_images()[index]
    fh, fw = frost.shape[-2:]
    factor = 1.0
    if fh < height or fw < width:
        factor = max(height / fh if fh < height else 0.0, width / fw if fw < width else 0.0)
    factor *= 1.1
    size = (math.ceil(fh * factor), math.ceil(fw * factor))
    scaled = F.interpolate(frost.unsqueeze(0), size=size, mode="bicubic", align_corners=False)
    return scaled[0].clamp(0, 255)


def _frost(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    keep, amount = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))[s]
    height, width = x.shape[-2:]
    layers = []
    for g in gens:
        index = int(torch.randint(6, (), generator=g))
        frost = _frost_rescaled(index, height, width)
        top = int(torch.randint(frost.shape[1] - height, (), generator=g))
        left = int(torch.randint(frost.shape[2] - width, (), generator=g))
        layers.append(frost[:, top : top + height, left : left + width])
    frost = torch.stack(layers).to(x.device) / 255
    return keep * x + amount * frost


def _snow(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    )[s]
    height, width = x.shape[-2:]
    layers = []
    for g in gens:
        layer = torch.randn((1, 1, height, width), generator=g) * scale + loc
        layer = _clipped_zoom(layer, zoom)[0]
        layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
        layer = _motion_blur(layer, radius, sigma, float(_uniform(g, -135, -45)))
        layers.append(torch.round(layer * 255).clamp(0, 255) / 255)
    snow = torch.stack(layers).to(x.device)
    x = keep * x + (1 - keep) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
    return x + snow + snow.flip(-1, -2)


def _sobel_edges(layer: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """A Canny-like edge map of (B, 1, H, W) in 0..255: the Sobel magnitude (L1, as OpenCV)
    thinned to its maxima across the gradient direction (four directions), kept above
    ``high``, or above ``low`` next to such a pixel (one step of hysteresis)."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=layer.device)
    padded = F.pad(layer, (1, 1, 1, 1), mode="reflect")
    gx = F.conv2d(padded, kx.view(1, 1, 3, 3))
    gy = F.conv2d(padded, kx.t().contiguous().view(1, 1, 3, 3))
    magnitude = gx.abs() + gy.abs()
    # Direction bins of 45 degrees: 0 horizontal gradient, 1 diagonal, 2 vertical, 3 anti.
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    bins = torch.round(angle / 45).long() % 4
    around = F.pad(magnitude, (1, 1, 1, 1), mode="constant", value=0)
    height, width = magnitude.shape[-2:]

    def at(dy: int, dx: int) -> torch.Tensor:
        return around[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    neighbours = (((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, 0), (-1, 0)), ((1, -1), (-1, 1)))
    peak = torch.zeros_like(magnitude, dtype=torch.bool)
    for k, (a, b) in enumerate(neighbours):
        peak |= (bins == k) & (magnitude >= at(*a)) & (magnitude > at(*b))
    thin = torch.where(peak, magnitude, torch.zeros_like(magnitude))
    strong = thin > high
    near = F.max_pool2d(strong.float(), 3, stride=1, padding=1) > 0
    return strong | ((thin > low) & near)


def _equalise(values: torch.Tensor) -> torch.Tensor:
    """OpenCV's equalizeHist of each uint8-valued image (B, 1, H, W), values 0..255."""
    out = torch.empty_like(values)
    for i in range(values.shape[0]):
        levels = values[i].long().flatten()
        hist = torch.bincount(levels, minlength=256).float()
        cdf = hist.cumsum(0)
        low = cdf[hist > 0][0]
        total = cdf[-1]
        if total == low:  # one level only: OpenCV leaves the image as it is
            out[i] = values[i]
            continue
        lut = torch.round((cdf - low) / (total - low) * 255).clamp(0, 255)
        out[i] = lut[levels].view_as(values[i])
    return out


def _spatter(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    loc, scale, sigma, threshold, intensity, mud = (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    )[s]
    height, width = x.shape[-2:]
    liquid = _draw(gens, x.device, lambda g: torch.randn((1, height, width), generator=g))
    liquid = _gaussian(liquid * scale + loc, sigma)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if not mud:
        # numpy's uint8 cast of values past 255 wraps them (x86): the reference's layer does.
        levels = torch.remainder(torch.floor(liquid * 255), 256)
        edges = _sobel_edges(levels, 50, 150)
        # Distance to the nearest edge, truncated at 20, by repeated 3x3 dilation.
        distance = torch.full_like(levels, 20.0)
        reached = edges
        for step in range(20):
            distance = torch.where(
                reached & (distance == 20), torch.full_like(distance, step), distance
            )
            reached = F.max_pool2d(reached.float(), 3, stride=1, padding=1) > 0
        box = torch.full((1, 1, 3, 3), 1 / 9, device=x.device)
        distance = torch.floor(F.conv2d(F.pad(distance, (1, 1, 1, 1), mode="reflect"), box))
        distance = _equalise(distance)
        ker = torch.tensor([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]], device=x.device)
        distance = F.conv2d(F.pad(distance, (1, 1, 1, 1), mode="reflect"), ker.view(1, 1, 3, 3))
        distance = torch.round(distance).clamp(0, 255)
        distance = F.conv2d(F.pad(distance, (1, 1, 1, 1), mode="reflect"), box)
        m = levels * distance
        m = m / m.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) * intensity
        colour = torch.tensor((175, 238, 238), device=x.device).view(1, 3, 1, 1) / 255.0
        return x + m * colour
    m = _gaussian((liquid > threshold).float(), intensity)
    m = torch.where(m < 0.8, torch.zeros_like(m), m)
    colour = torch.tensor((63, 42, 20), device=x.device).view(1, 3, 1, 1) / 255.0
    return x * (1 - m) + colour * m


# --------------------------------------------------------------------------- digital


def _contrast(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[s]
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * c + means


def _brightness(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[s]
    hsv = _rgb_to_hsv(x)
    hsv[:, 2] = (hsv[:, 2] + c).clamp(0, 1)
    return _hsv_to_rgb(hsv)


def _saturate(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    scale, shift = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))[s]
    hsv = _rgb_to_hsv(x)
    hsv[:, 1] = (hsv[:, 1] * scale + shift).clamp(0, 1)
    return _hsv_to_rgb(hsv)


def _jpeg_compression(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    import io

    from PIL import Image

    quality = (25, 18, 15, 10, 7)[s]
    # Pillow's libjpeg on the CPU, as imagecorruptions: the same bytes on every device
    # (torchvision's encoder is deprecated from 0.29, and nvjpeg's is another codec).
    images = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as picture:
            decoded.append(torch.from_numpy(np.asarray(picture.convert("RGB")).copy()))
    return torch.stack(decoded).permute(0, 3, 1, 2).to(x.device).float() / 255


@functools.lru_cache(maxsize=16)
def _box_weights(size: int, out: int) -> torch.Tensor:
    """Pillow's BOX reduction as an (out, size) matrix: output pixel i averages the input
    pixels whose centres fall in its box (Pillow's ``precompute_coeffs`` with the box filter)."""
    scale = size / out
    support = scale * 0.5
    weights = torch.zeros((out, size))
    for i in range(out):
        centre = (i + 0.5) * scale
        low, high = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size)
        for x in range(low, high):
            if -0.5 <= (x - centre + 0.5) / scale < 0.5:
                weights[i, x] = 1.0
        weights[i] /= weights[i].sum()
    return weights


def _pixelate(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[s]
    height, width = x.shape[-2:]
    rows = _box_weights(height, int(height * c)).to(x.device)
    cols = _box_weights(width, int(width * c)).to(x.device)
    # Pillow reduces horizontally, then vertically, rounding to 8 bits after each pass.
    wide = torch.round(torch.einsum("bchw,ow->bcho", x * 255, cols))
    small = torch.round(torch.einsum("bchw,oh->bcow", wide, rows)) / 255

    # Pillow's NEAREST enlargement walks the source coordinate in doubles, adding the scale
    # per pixel from half a step in; its truncation decides exact boundaries (12.0 vs 11.99).
    def nearest(out: int, size: int) -> torch.Tensor:
        step = size / out
        walk, picked = step * 0.5, []
        for _ in range(out):
            picked.append(min(int(walk), size - 1))
            walk += step
        return torch.tensor(picked, device=x.device)

    small = small.index_select(2, nearest(height, small.shape[2]))
    return small.index_select(3, nearest(width, small.shape[3]))


def _elastic_transform(x: torch.Tensor, s: int, gens: Sequence[torch.Generator]) -> torch.Tensor:
    alpha = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)[s]
    batch, _, height, width = x.shape
    sigma = (height * 0.01, width * 0.01)
    most = height * 0.005
    fields = _draw(gens, x.device, lambda g: _uniform(g, -most, most, (2, height, width)))
    fields = _gaussian(fields, sigma, truncate=3, mode="reflect") * alpha
    dx, dy = fields[:, 0], fields[:, 1]
    rows = torch.arange(height, device=x.device, dtype=torch.float32).view(1, -1, 1)
    cols = torch.arange(width, device=x.device, dtype=torch.float32).view(1, 1, -1)
    # grid_sample's coordinates in [-1, 1] with corners at pixel centres (align_corners).
    grid = torch.stack(
        [(cols + dx) / (width - 1) * 2 - 1, (rows + dy) / (height - 1) * 2 - 1], dim=-1
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


_CORRUPTIONS: dict[str, Callable[[torch.Tensor, int, Sequence[torch.Generator]], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur_corruption,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
    "speckle_noise": _speckle_noise,
    "gaussian_blur": _gaussian_blur,
    "spatter": _spatter,
    "saturate": _saturate,
}
