"""The clinic's colour, made safe to use: whatever ``ClinicSettings.brand_color`` an admin picks,
buttons, links and focus rings keep WCAG AA contrast against white."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_BRAND = "#0f6e6e"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
WHITE = (255, 255, 255)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(a: tuple[float, float, float], b: tuple[float, float, float], share_of_b: float):
    return tuple(x + (y - x) * share_of_b for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Palette:
    brand: str  # the clinic's colour as chosen (decorative use: the top bar)
    accent: str  # the colour darkened until white text on it, and it on white, reach 4.5:1
    accent_dark: str  # hover and pressed states
    tint: str  # a pale wash of the colour for selected and highlighted backgrounds


def palette(brand_color: str | None) -> Palette:
    brand = brand_color if brand_color and _HEX.match(brand_color) else DEFAULT_BRAND
    rgb = _rgb(brand)
    accent = rgb
    for _step in range(40):
        if contrast(accent, WHITE) >= 4.6:
            break
        accent = _mix(accent, (0, 0, 0), 0.08)
    return Palette(
        brand=brand.lower(),
        accent=_hex(accent),
        accent_dark=_hex(_mix(accent, (0, 0, 0), 0.25)),
        tint=_hex(_mix(rgb, WHITE, 0.9)),
    )
