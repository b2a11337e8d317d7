// Device detail: every metric with its live value, and a history chart per numeric metric with
// 1 h / 24 h / 7 d presets (GET .../history, downsampled by the gateway) extended by live values.
import { byId, el, flash, showMessage } from './dom.js';
import { api, seg } from './api.js';
import { startPage } from './shell.js';
import { MetricChart, PRESETS } from './chart.js';
import { formatAge, formatTime, formatValue, qualityBadge, setQualityBadge, worstQuality } from './format.js';

const NUMERIC = ['Float', 'Int'];
const deviceId = new URLSearchParams(location.search).get('id');

let device = null;
let preset = PRESETS.find((p) => p.id === location.hash.slice(1)) ?? PRESETS[0];
/** metric name -> {metric, valueCell, badge, timeCell, receivedCell, row} */
const metricRows = new Map();
/** metric name -> {chart, card, note} */
const charts = new Map();

function renderHeader() {
  document.title = `${device.device_name || device.device_id} · opcgw`;
  byId('device-title').textContent = device.device_name || device.device_id;
  byId('device-quality').replaceChildren(qualityBadge(device.quality));
  byId('device-summary').textContent = `${device.device_id} · application ${device.application_id ?? '—'} · last seen ${formatAge(device.last_seen)}`;
  const link = byId('send-command');
  link.hidden = !(device.commands ?? []).length;
  link.href = `commands.html?device=${encodeURIComponent(device.device_id)}`;
}

function renderMetrics() {
  metricRows.clear();
  const rows = (device.metrics ?? []).map((metric) => {
    const valueCell = el('td', { 'data-label': 'Value', class: 'metric-value', text: `${formatValue(metric.value, metric.metric_type)}${metric.unit ? ` ${metric.unit}` : ''}` });
    const badge = qualityBadge(metric.quality);
    const timeCell = el('td', { 'data-label': 'Device time', text: formatTime(metric.timestamp) });
    const receivedCell = el('td', { 'data-label': 'Received', text: formatAge(metric.received) });
    const row = el('tr', { dataset: { metric: metric.metric_name } }, el('td', { 'data-label': 'Metric', class: 'device-name', text: metric.metric_name }), valueCell, el('td', { 'data-label': 'Quality' }, badge), timeCell, receivedCell);
    metricRows.set(metric.metric_name, { metric: { ...metric }, valueCell, badge, timeCell, receivedCell, row });
    return row;
  });
  byId('metrics').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'empty', text: 'This device has no metrics.' }))]));
}

function renderPresets() {
  const buttons = PRESETS.map((p) => {
    const button = el('button', { type: 'button', text: p.label, 'aria-pressed': String(p.id === preset.id), dataset: { preset: p.id } });
    button.addEventListener('click', () => {
      preset = p;
      history.replaceState(null, '', `#${p.id}`);
      for (const b of byId('presets').children) b.setAttribute('aria-pressed', String(b.dataset.preset === p.id));
      loadCharts();
    });
    return button;
  });
  byId('presets').replaceChildren(...buttons);
}

function renderCharts() {
  for (const { chart } of charts.values()) chart.destroy();
  charts.clear();
  const numeric = (device.metrics ?? []).filter((m) => NUMERIC.includes(m.metric_type));
  byId('no-charts').hidden = numeric.length > 0;
  const cards = numeric.map((metric) => {
    const target = el('div', { class: 'chart' });
    const note = el('div', { class: 'chart-note' });
    const card = el('div', { class: 'chart-card', dataset: { metric: metric.metric_name, state: 'loading' } }, el('h3', { text: metric.metric_name }), target, note);
    charts.set(metric.metric_name, { chart: null, card, note, target, metric });
    return card;
  });
  byId('charts').replaceChildren(...cards);
  for (const entry of charts.values()) entry.chart = new MetricChart(entry.target, { label: entry.metric.metric_name, unit: entry.metric.unit });
}

async function loadChart(entry, windowSpec) {
  const to = Math.floor(Date.now() / 1000);
  const from = to - windowSpec.seconds;
  entry.card.dataset.state = 'loading';
  entry.card.dataset.livePoints = '0';
  entry.card.dataset.window = String(windowSpec.seconds);
  entry.note.textContent = 'Loading…';
  const url = `/api/devices/${seg(deviceId)}/metrics/${seg(entry.metric.metric_name)}/history?from=${from}&to=${to}&max_points=${entry.chart.maxPoints()}`;
  try {
    const answer = await api(url);
    if (preset.id !== windowSpec.id) return; // A newer preset was chosen meanwhile.
    const count = entry.chart.show(answer, from, to, windowSpec.seconds);
    entry.card.dataset.points = String(count);
    entry.card.dataset.downsampled = String(answer.downsampled === true);
    entry.note.textContent = count === 0 ? 'No values in this window yet.' : answer.downsampled ? `${count} buckets (min / avg / max), last ${windowSpec.label}` : `${count} values, last ${windowSpec.label}`;
    entry.card.dataset.state = 'ready';
  } catch (error) {
    if (error.status === 401) return;
    entry.card.dataset.state = 'error';
    entry.note.textContent = `History unavailable: ${error.message}`;
  }
}

function loadCharts() {
  const windowSpec = preset;
  return Promise.all([...charts.values()].map((entry) => loadChart(entry, windowSpec)));
}

function onValue(update) {
  if (update.device_id !== deviceId) return;
  const entry = metricRows.get(update.metric);
  if (!entry) return;
  const m = entry.metric;
  m.value = update.value;
  m.timestamp = update.timestamp ?? m.timestamp;
  m.received = update.received ?? m.received;
  if (update.quality) m.quality = update.quality;
  entry.valueCell.textContent = `${formatValue(m.value, m.metric_type)}${m.unit ? ` ${m.unit}` : ''}`;
  entry.timeCell.textContent = formatTime(m.timestamp);
  entry.receivedCell.textContent = formatAge(m.received);
  setQualityBadge(entry.badge, m.quality);
  flash(entry.valueCell);
  device.last_seen = m.received ?? device.last_seen;
  updateDeviceQuality();
  const chart = charts.get(update.metric);
  if (chart?.chart?.push(m.timestamp ?? m.received, m.value)) {
    chart.card.dataset.livePoints = String(Number(chart.card.dataset.livePoints ?? 0) + 1);
  }
}

function onQuality(update) {
  if (update.device_id !== deviceId) return;
  const entry = metricRows.get(update.metric);
  if (!entry || !update.quality) return;
  entry.metric.quality = update.quality;
  setQualityBadge(entry.badge, update.quality);
  updateDeviceQuality();
}

function updateDeviceQuality() {
  device.quality = worstQuality([...metricRows.values()].map((e) => e.metric.quality));
  renderHeader();
}

async function loadDevice() {
  try {
    device = await api(`/api/devices/${seg(deviceId)}`);
    showMessage(byId('device-message'), null);
    return true;
  } catch (error) {
    if (error.status === 404) showMessage(byId('device-message'), `No device "${deviceId}" is configured.`, 'error');
    else if (error.status !== 401) showMessage(byId('device-message'), `Device unavailable: ${error.message}`, 'error');
    return false;
  }
}

async function reloadAll() {
  if (!(await loadDevice())) return;
  renderHeader();
  renderMetrics();
  renderCharts();
  await loadCharts();
}

/** What the metrics table and the charts are built from: when it changes, they are rebuilt. */
function metricShape(d) {
  return JSON.stringify((d?.metrics ?? []).map((m) => [m.metric_name, m.metric_type, m.unit]));
}

// An edit or reload made a new configuration live: the device may have been renamed, its metrics
// changed or the device removed (loadDevice then says so).
let configTimer = null;
function onConfig() {
  clearTimeout(configTimer);
  configTimer = setTimeout(async () => {
    const shape = metricShape(device);
    if (!(await loadDevice())) return;
    renderHeader();
    if (metricShape(device) !== shape) {
      renderMetrics();
      renderCharts();
      await loadCharts();
    }
  }, 500);
}

const { live } = await startPage('devices');
if (!deviceId) {
  showMessage(byId('device-message'), 'No device chosen: open one from the device list.', 'error');
} else {
  renderPresets();
  await reloadAll();
  live.on('value', onValue).on('quality', onQuality).on('config', onConfig).onResync(reloadAll).start();
  setInterval(() => {
    for (const entry of metricRows.values()) entry.receivedCell.textContent = formatAge(entry.metric.received);
  }, 5000);
}
