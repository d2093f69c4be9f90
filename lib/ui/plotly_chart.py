"""Plotly charts drawn by plotly.js's cartesian bundle in a Streamlit component, for the chart pages.

Streamlit's own Plotly chart (``st.plotly_chart``) ships the whole of plotly.js, 4.7 MB, which the browser
evaluates in one task of 0.7–0.9 s before it draws the first chart of a new tab: a bare Streamlit page with one
bar chart took 1.36–1.5 s to draw it on the 2-core machine (docs/performance.md). The Metrics and weekly report
pages draw bars, lines and box plots only, which plotly.js's cartesian bundle holds in 1.5 MB
(``lib/metrics/assets/plotly-cartesian.min.js``, plotly.js 4.1.1 as the Python ``plotly`` package ships it, MIT
licence beside it). The app server serves it at :func:`asset_path`, whose name carries a hash of its content, so
browsers keep it. The first chart of a page loads it: asked for earlier (first thing in the page's document,
ahead of Streamlit's own start), it held up the KPI tiles by 0.3 s and drew the first chart no sooner
(docs/performance.md).

The figure is the Plotly figure the pages build (``lib.metrics.charts``), sent as JSON. The component follows the
app's light or dark theme as Streamlit's own chart does: the page's text colour and font for the text, faint
gridlines of the same colour, the title bold at the top left; the figure's own settings win. A selectable chart
reports a click or a box selection as ``{"points": [...]}``, each point with its ``customdata``, ``x`` and ``y``,
which :func:`selection` reads.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from lib.metrics.charts import PLOTLY_BUNDLE as BUNDLE


@cache
def bundle_hash() -> str:
    return hashlib.sha256(BUNDLE.read_bytes()).hexdigest()[:12]


@cache
def asset_path() -> str:
    """The bundle's address on the app server (absolute, like /auth/session); its name changes with its content."""
    return f"/charts/plotly-cartesian.{bundle_hash()}.min.js"


_JS = r"""
export default function (component) {
  const { parentElement, data, setStateValue } = component;
  let box = parentElement.querySelector('.hd-chart');
  if (!box) {
    box = document.createElement('div');
    box.className = 'hd-chart';
    box.setAttribute('data-testid', 'hdPlotlyChart');
    parentElement.appendChild(box);
  }
  const fig = JSON.parse(data.figure);
  const points = (ev) => ((ev && ev.points) || []).map((p) => ({
    curve_number: p.curveNumber, point_number: p.pointNumber, point_index: p.pointIndex,
    x: p.x, y: p.y, customdata: p.customdata === undefined ? null : p.customdata,
  }));
  // Streamlit's theme for Plotly, as its own chart applies it: the figure's own settings win over these.
  const merge = (theme, own) => {
    const out = Object.assign({}, theme, own || {});
    for (const k of Object.keys(theme)) {
      const t = theme[k], o = own && own[k];
      if (t && typeof t === 'object' && !Array.isArray(t) && o && typeof o === 'object' && !Array.isArray(o)) {
        out[k] = merge(t, o);
      }
    }
    return out;
  };
  const draw = () => {
    const Plotly = window.Plotly;
    const page = getComputedStyle(box);
    const app = document.querySelector('[data-testid="stApp"]');
    const bg = (app && getComputedStyle(app).backgroundColor) || '#ffffff';
    const text = page.color || '#31333f';
    const family = page.fontFamily;
    const faint = text.replace(/^rgb\((.*)\)$/, 'rgba($1, 0.18)');
    const axis = { gridcolor: faint, zerolinecolor: faint, tickcolor: faint, automargin: true,
                   tickfont: { color: text, size: 12 }, title: { font: { color: text, size: 14 } } };
    const theme = {
      font: { color: text, family: family, size: 12 },
      title: { font: { family: family, size: 16, color: text, weight: 600 }, x: 0, xanchor: 'left' },
      legend: { font: { size: 12, color: text }, valign: 'top' },
      hoverlabel: { bgcolor: bg, bordercolor: faint, font: { color: text, family: family, size: 12 } },
      xaxis: Object.assign({}, axis, { showgrid: false, zeroline: false }),
      yaxis: axis,
    };
    const layout = merge(theme, fig.layout || {});
    layout.autosize = true;
    delete layout.width;
    if (data.selectable) {
      layout.dragmode = layout.dragmode || 'select';
      layout.clickmode = 'event+select';
    }
    const config = Object.assign({ responsive: true, displaylogo: false }, data.config || {});
    Plotly.react(box, fig.data || [], layout, config);
    if (data.selectable && !box.__hdEvents) {
      box.__hdEvents = true;
      // A click selects the bar under the pointer (clickmode "event+select") and a drag selects a box: both end
      // in plotly_selected with the selected points only (plotly_click would carry every bar the unified hover
      // shows at that x). A double click clears the selection.
      box.on('plotly_selected', (ev) => { if (ev) setStateValue('selection', { points: points(ev) }); });
      box.on('plotly_deselect', () => setStateValue('selection', { points: [] }));
    }
  };
  if (window.Plotly) { draw(); return; }
  let script = document.querySelector('script[data-hd-plotly]');
  if (!script) {
    script = document.createElement('script');
    script.src = data.bundle;
    script.setAttribute('data-hd-plotly', '1');
    document.head.appendChild(script);
  }
  script.addEventListener('load', draw, { once: true });
  script.addEventListener('error', () => {
    box.textContent = 'The chart could not be drawn: its code did not load. Reload the page to try again.';
  }, { once: true });
}
"""


@cache
def _component() -> Any:
    import streamlit as st  # here, not at the top: the report CLI reads BUNDLE without loading Streamlit

    return st.components.v2.component("helpdesk_plotly_chart", js=_JS, isolate_styles=False)


def _ignore() -> None:
    """A selection reruns the page (a state change with a callback does); the page reads it from the result."""


def draw(fig: Any, *, key: str, selectable: bool = False, config: dict | None = None) -> Any:
    """Draw a Plotly figure (a ``go.Figure`` or a plain specification) and return the component's result: its
    ``selection`` (None until something is selected) when ``selectable``."""
    import plotly.io as pio

    figure = json.dumps(fig, separators=(",", ":")) if isinstance(fig, dict) else pio.to_json(fig, validate=False)
    data = {"figure": figure, "bundle": asset_path(), "selectable": selectable, "config": config or {}}
    if selectable:
        return _component()(data=data, key=key, default={"selection": None}, on_selection_change=_ignore)
    _component()(data=data, key=key)
    return None


def selection(result: Any) -> list[dict]:
    """The selected points of a selectable chart's result (:func:`draw`), or []."""
    if result is None:
        return []
    try:
        chosen = result["selection"]
    except (KeyError, TypeError):
        chosen = getattr(result, "selection", None)
    if not isinstance(chosen, dict):
        return []
    return [p for p in chosen.get("points") or [] if isinstance(p, dict)]
