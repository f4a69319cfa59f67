"""Draw the web app's icons once (the PNGs are committed; nothing runs this at run time).

    .venv/bin/python scripts/make_icons.py

Plain Python (zlib + struct), no imaging library: a blue rounded square with a white
padlock, as in static/favicon.svg. The maskable icon keeps the lock inside the middle 80 %
(its safe zone) on a full-bleed background.
"""
import struct
import zlib
from pathlib import Path

BLUE = (0x1F, 0x6F, 0xEB)
WHITE = (0xFF, 0xFF, 0xFF)
OUT = Path(__file__).resolve().parents[1] / "static" / "icons"


def _png(size: int, pixel) -> bytes:
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        for x in range(size):
            rows.extend(pixel(x + 0.5, y + 0.5))
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    data = zlib.compress(bytes(rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _lock(u: float, v: float) -> bool:
    """A padlock in the unit square (0..1): body and shackle, keyhole cut out."""
    body = 0.28 <= u <= 0.72 and 0.46 <= v <= 0.80
    cx, cy = 0.5, 0.46
    d = ((u - cx) ** 2 + (v - cy) ** 2) ** 0.5
    shackle = v <= 0.46 and 0.13 <= d <= 0.19 or (0.31 <= u <= 0.37 or 0.63 <= u <= 0.69) and 0.40 <= v <= 0.46
    keyhole = ((u - 0.5) ** 2 + (v - 0.59) ** 2) ** 0.5 <= 0.045 or (0.485 <= u <= 0.515 and 0.59 <= v <= 0.70)
    return (body and not keyhole) or shackle


def icon(size: int, *, maskable: bool) -> bytes:
    radius = 0 if maskable else size * 0.18
    scale = 0.8 if maskable else 1.0  # maskable: the lock stays inside the safe zone

    def pixel(x: float, y: float):
        if radius:
            dx = max(radius - x, 0, x - (size - radius))
            dy = max(radius - y, 0, y - (size - radius))
            if dx * dx + dy * dy > radius * radius:
                return (0, 0, 0, 0)
        u = (x / size - 0.5) / scale + 0.5
        v = (y / size - 0.5) / scale + 0.5
        return (*(WHITE if _lock(u, v) else BLUE), 255)

    return _png(size, pixel)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        (OUT / f"icon-{size}.png").write_bytes(icon(size, maskable=False))
        (OUT / f"icon-maskable-{size}.png").write_bytes(icon(size, maskable=True))
    print("icons written to", OUT)
