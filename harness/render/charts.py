"""Charts as data: where each bar, label and tick goes, computed here; one macro draws any of them as SVG."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChartText:
    x: float
    y: float
    text: str
    css_class: str = ""
    anchor: str = ""  # text-anchor: "", "start", "middle", "end"
    link: str = ""  # an href, or "" for plain text


@dataclass(frozen=True)
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str  # the tooltip: the full label and value
    target: str = ""  # data-target, when the bar stands for a target


@dataclass(frozen=True)
class ChartLine:
    x1: float
    y1: float
    x2: float
    y2: float
    css_class: str


@dataclass(frozen=True)
class Chart:
    """One horizontal bar chart: the SVG's size and attributes, then its lines, bars and texts."""

    width: float
    height: float
    css_class: str
    element_id: str = ""
    data_figure: str = ""
    aria_label: str = ""
    lines: tuple[ChartLine, ...] = ()
    bars: tuple[ChartBar, ...] = ()
    texts: tuple[ChartText, ...] = field(default=())
