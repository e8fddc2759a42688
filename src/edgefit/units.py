"""The one place numbers become short human-readable strings (every package uses these).

>>> si(4.608e12, "op/s"), si(724_406_816, compact=True)
('4.61 Top/s', '724M')
>>> format_bytes(320 * 1024), format_bytes(243_818_624)
('320 KB', '233 MB')
>>> human_seconds(255.2e-6), human_joules(3.1e-3)
('255 us', '3.1 mJ')
"""

from __future__ import annotations


def si(value: float, unit: str = "", *, compact: bool = False) -> str:
    """``value`` with a decimal prefix, 3 significant digits: ``4.61 Top/s``, or ``724M`` compact.

    >>> si(4.61e12, "op/s"), si(1.248e15, "op/s"), si(724_406_816, compact=True), si(512)
    ('4.61 Top/s', '1.25 Pop/s', '724M', '512')
    """
    sep = "" if compact else " "
    for prefix, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{sep}{prefix}{unit}"
    if compact and isinstance(value, int):
        return f"{value}{unit}"
    return f"{value:.3g}{sep}{unit}".rstrip()


def format_bytes(n: float) -> str:
    """Bytes in binary units labelled as datasheets do (320 KB = 320 x 1024 bytes)."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            value = n / scale
            text = f"{value:.1f}".rstrip("0").rstrip(".") if value < 100 else f"{value:.0f}"
            return f"{text} {unit}"
    return f"{n:.0f} B"


def human_seconds(s: float) -> str:
    """Seconds with the unit that keeps 1-3 digits before the point (``255 us``)."""
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.3g} us"
    return f"{s * 1e9:.3g} ns"


def human_joules(j: float) -> str:
    """Joules with the unit that keeps 1-3 digits before the point (``3.1 mJ``)."""
    for factor, suffix in ((1, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if j >= factor:
            return f"{j / factor:.3g} {suffix}"
    return f"{j * 1e12:.3g} pJ"
