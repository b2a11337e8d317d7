// One history chart (uPlot, vendored; loaded as a classic script that defines window.uPlot):
// raw points as a line, or a downsampled answer as its average with a min/max band. The window
// slides with live values so a 1 h / 24 h / 7 d view keeps extending without refetching.

const LINE = '#1f5fbf';
const BAND_EDGE = 'rgba(31, 95, 191, 0.35)';
const BAND_FILL = 'rgba(31, 95, 191, 0.15)';
const HEIGHT = 220;

export const PRESETS = [
  { id: '1h', label: '1 h', seconds: 3600 },
  { id: '24h', label: '24 h', seconds: 86400 },
  { id: '7d', label: '7 d', seconds: 7 * 86400 },
];

function seconds(text) {
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms / 1000;
}

export class MetricChart {
  /**
   * @param {HTMLElement} target where uPlot draws
   * @param {{label: string, unit: string | null}} info
   */
  constructor(target, info) {
    this.target = target;
    this.info = info;
    this.plot = null;
    this.windowSecs = 3600;
    this.from = 0;
    this.to = 0;
    this.downsampled = false;
    this.data = [[], []];
    // [min, max] the operator zoomed to by dragging, or null to follow the sliding window.
    this.zoom = null;
    this.resize = new ResizeObserver(() => this.plot?.setSize({ width: this.width(), height: HEIGHT }));
    this.resize.observe(target);
  }

  width() {
    return Math.max(200, Math.floor(this.target.clientWidth));
  }

  /** Points that fit the drawing: one per pixel is the most a line chart can show. */
  maxPoints() {
    return Math.min(10000, Math.max(10, this.width()));
  }

  /** Draws a history answer of GET .../history (WEB-API.md) over [from, to] in Unix seconds. */
  show(answer, from, to, windowSecs) {
    this.windowSecs = windowSecs;
    this.from = seconds(answer.from) ?? from;
    this.to = seconds(answer.to) ?? to;
    this.downsampled = answer.downsampled === true;
    const points = (answer.points ?? []).filter((p) => seconds(p.t) !== null);
    const numeric = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'boolean' ? Number(v) : null);
    if (this.downsampled) {
      this.data = [points.map((p) => seconds(p.t)), points.map((p) => numeric(p.avg)), points.map((p) => numeric(p.min)), points.map((p) => numeric(p.max))];
    } else {
      this.data = [points.map((p) => seconds(p.t)), points.map((p) => numeric(p.v))];
    }
    this.draw();
    return points.length;
  }

  /** Appends a live value (true when drawn); the window keeps its length and slides to the newest time. */
  push(timeText, value) {
    const t = seconds(timeText);
    const v = typeof value === 'number' && Number.isFinite(value) ? value : null;
    if (t === null || !this.plot) return false;
    const xs = this.data[0];
    if (xs.length && t < xs[xs.length - 1]) return false; // Charts are in time order; late points wait for a refetch.
    xs.push(t);
    for (let i = 1; i < this.data.length; i += 1) this.data[i].push(v);
    this.to = Math.max(this.to, t);
    this.from = this.to - this.windowSecs;
    let drop = 0;
    while (drop < xs.length && xs[drop] < this.from) drop += 1;
    if (drop) this.data = this.data.map((series) => series.slice(drop));
    this.plot.setData(this.data);
    return true;
  }

  draw() {
    this.plot?.destroy();
    const unit = this.info.unit ? ` (${this.info.unit})` : '';
    const series = [{}];
    let bands;
    if (this.downsampled) {
      series.push(
        { label: `${this.info.label} avg${unit}`, stroke: LINE, width: 1.5 },
        { label: 'min', stroke: BAND_EDGE, width: 1 },
        { label: 'max', stroke: BAND_EDGE, width: 1 },
      );
      bands = [{ series: [3, 2], fill: BAND_FILL }];
    } else {
      series.push({ label: `${this.info.label}${unit}`, stroke: LINE, width: 1.5, points: { show: this.data[0].length < 60 } });
    }
    const opts = {
      width: this.width(),
      height: HEIGHT,
      series,
      bands,
      // The x range is the chosen window, not the data's extent, so a sparse series still shows
      // the whole hour or day, and it slides as live values arrive.
      scales: { x: { time: true, range: () => this.zoom ?? [this.from, this.to] } },
      axes: [{}, { size: yAxisWidth }],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: {
        // A drag selects a span to zoom into; uPlot sets the scale right after this hook.
        setSelect: [
          (u) => {
            if (u.select.width > 0) this.zoom = [u.posToVal(u.select.left, 'x'), u.posToVal(u.select.left + u.select.width, 'x')];
          },
        ],
      },
    };
    this.zoom = null;
    this.plot = new window.uPlot(opts, this.data, this.target);
    // A double click goes back to following the window (uPlot's own handler runs first).
    this.plot.over.addEventListener('dblclick', () => {
      this.zoom = null;
      this.plot?.setScale('x', { min: this.from, max: this.to });
    });
  }

  destroy() {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

/**
 * Room for the widest y-axis label: uPlot does not measure its labels, and a fixed width cut
 * large counters ("150,000") short.
 */
function yAxisWidth(_plot, labels) {
  const longest = (labels ?? []).reduce((n, label) => Math.max(n, String(label).length), 0);
  return Math.max(48, 16 + longest * 8);
}
