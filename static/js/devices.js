// Devices: one row per device, rendered once; live values update their cells in place (a
// thousand devices stay responsive because nothing is re-rendered per event). Search and the
// quality filter only toggle rows' `hidden`.
import { byId, el, flash, showMessage } from './dom.js';
import { api } from './api.js';
import { every, startPage } from './shell.js';
import { QUALITIES, formatAge, formatTime, formatValue, qualityBadge, setQualityBadge, worstQuality } from './format.js';

/** device_id -> {device, row, badge, lastSeenCell, search, metrics: Map(name -> {metric, chip, valueNode})} */
let rows = new Map();

function key(deviceId) {
  return String(deviceId);
}

function metricChip(device, metric) {
  const valueNode = el('span', { class: 'metric-value', text: formatValue(metric.value, metric.metric_type) });
  const chip = el(
    'span',
    {
      class: `metric q-${metric.quality}`,
      title: `${metric.metric_name}: ${metric.quality}, device time ${formatTime(metric.timestamp)}`,
      dataset: { device: device.device_id, metric: metric.metric_name },
    },
    el('span', { class: 'metric-name', text: metric.metric_name }),
    valueNode,
    metric.unit ? el('span', { class: 'muted', text: metric.unit }) : null,
  );
  return { metric: { ...metric }, chip, valueNode };
}

function deviceRow(application, device) {
  const metrics = new Map();
  const chips = (device.metrics ?? []).map((metric) => {
    const entry = metricChip(device, metric);
    metrics.set(metric.metric_name, entry);
    return entry.chip;
  });
  const badge = qualityBadge(device.quality);
  const lastSeenCell = el('td', { 'data-label': 'Last seen', class: 'nowrap', text: formatAge(device.last_seen) });
  const link = el('a', { class: 'device-name', href: `device.html?id=${encodeURIComponent(device.device_id)}`, text: device.device_name || device.device_id });
  const row = el(
    'tr',
    { dataset: { deviceId: device.device_id, quality: device.quality } },
    el('td', { 'data-label': 'Device' }, link, el('div', { class: 'muted small', text: `${application.application_name ?? application.application_id} · ${device.device_id}${device.origin === 'discovered' ? ' · discovered' : ''}` })),
    el('td', { 'data-label': 'Quality' }, badge),
    lastSeenCell,
    el('td', { 'data-label': 'Values' }, el('div', { class: 'metrics' }, chips.length ? chips : el('span', { class: 'muted', text: 'no metrics' }))),
  );
  const search = [device.device_name, device.device_id, application.application_name, application.application_id, ...(device.metrics ?? []).map((m) => m.metric_name)]
    .filter(Boolean)
    .join(' ')
    .toLowerCase();
  return { device: { ...device }, row, badge, lastSeenCell, search, metrics };
}

function allDevices(answer) {
  return (answer.applications ?? []).flatMap((application) => (application.devices ?? []).map((device) => [application, device]));
}

function renderAll(answer) {
  rows = new Map();
  const fragment = document.createDocumentFragment();
  for (const [application, device] of allDevices(answer)) {
    const entry = deviceRow(application, device);
    rows.set(key(device.device_id), entry);
    fragment.append(entry.row);
  }
  const body = byId('devices');
  body.replaceChildren(fragment);
  if (rows.size === 0) body.append(el('tr', {}, el('td', { colspan: 4, class: 'empty', text: 'No devices are configured.' })));
  applyFilter();
}

let filterTimer = null;
function filterSoon() {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilter, 200);
}

function setDeviceQuality(entry) {
  const quality = worstQuality([...entry.metrics.values()].map((m) => m.metric.quality));
  if (quality !== entry.device.quality) {
    entry.device.quality = quality;
    entry.row.dataset.quality = quality;
    setQualityBadge(entry.badge, quality);
    // The quality filter may now hide or show this row.
    if (byId('quality-filter').value) filterSoon();
  }
}

/** Changes only the quality class, keeping a running highlight animation. */
function setChipQuality(chip, quality) {
  for (const q of QUALITIES) chip.classList.toggle(`q-${q}`, q === quality);
}

function applyValue(update) {
  const entry = rows.get(key(update.device_id));
  const metricEntry = entry?.metrics.get(update.metric);
  if (!metricEntry) return false;
  const metric = metricEntry.metric;
  metric.value = update.value;
  metric.timestamp = update.timestamp ?? metric.timestamp;
  metric.received = update.received ?? metric.received;
  if (update.quality) metric.quality = update.quality;
  metricEntry.valueNode.textContent = formatValue(metric.value, metric.metric_type);
  setChipQuality(metricEntry.chip, metric.quality);
  metricEntry.chip.title = `${metric.metric_name}: ${metric.quality}, device time ${formatTime(metric.timestamp)}`;
  flash(metricEntry.chip);
  if (metric.received) {
    entry.device.last_seen = metric.received;
    entry.lastSeenCell.textContent = formatAge(metric.received);
  }
  setDeviceQuality(entry);
  return true;
}

function applyQuality(update) {
  const entry = rows.get(key(update.device_id));
  const metricEntry = entry?.metrics.get(update.metric);
  if (!metricEntry || !update.quality) return;
  metricEntry.metric.quality = update.quality;
  setChipQuality(metricEntry.chip, update.quality);
  setDeviceQuality(entry);
}

/** Updates in place when the set of devices and metrics is unchanged, else renders again. */
function applySnapshot(answer) {
  const devices = allDevices(answer);
  const sameShape =
    devices.length === rows.size &&
    devices.every(([, d]) => {
      const entry = rows.get(key(d.device_id));
      return entry && (d.metrics ?? []).length === entry.metrics.size && (d.metrics ?? []).every((m) => entry.metrics.has(m.metric_name));
    });
  if (!sameShape) {
    renderAll(answer);
    return;
  }
  for (const [, device] of devices) {
    const entry = rows.get(key(device.device_id));
    for (const metric of device.metrics ?? []) {
      const current = entry.metrics.get(metric.metric_name).metric;
      if (current.value !== metric.value || current.quality !== metric.quality) {
        applyValue({ device_id: device.device_id, metric: metric.metric_name, value: metric.value, timestamp: metric.timestamp, received: metric.received, quality: metric.quality });
      }
    }
    entry.device.last_seen = device.last_seen;
    entry.lastSeenCell.textContent = formatAge(device.last_seen);
  }
  applyFilter();
}

function matchesQuality(quality, filter) {
  if (!filter) return true;
  if (filter === 'problem') return quality !== 'good';
  return quality === filter;
}

function applyFilter() {
  const words = byId('search').value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const filter = byId('quality-filter').value;
  let shown = 0;
  for (const entry of rows.values()) {
    const visible = matchesQuality(entry.device.quality, filter) && words.every((w) => entry.search.includes(w));
    if (entry.row.hidden === visible) entry.row.hidden = !visible;
    if (visible) shown += 1;
  }
  byId('device-count').textContent = shown === rows.size ? `${rows.size} devices` : `${shown} of ${rows.size} devices`;
}

function refreshAges() {
  const now = Date.now();
  for (const entry of rows.values()) {
    if (!entry.row.hidden) entry.lastSeenCell.textContent = formatAge(entry.device.last_seen, now);
  }
}

async function load(first) {
  try {
    const answer = await api('/api/devices');
    if (first) renderAll(answer);
    else applySnapshot(answer);
    showMessage(byId('devices-message'), null);
  } catch (error) {
    if (error.status !== 401) showMessage(byId('devices-message'), `Devices unavailable: ${error.message}`, 'error');
  }
}

let reloadTimer = null;
function reloadSoon() {
  if (reloadTimer === null) {
    reloadTimer = setTimeout(() => {
      reloadTimer = null;
      load(false);
    }, 1000);
  }
}

// Prefill from the URL (?q=...&quality=bad) so a filtered view can be bookmarked or linked.
const params = new URLSearchParams(location.search);
byId('search').value = params.get('q') ?? '';
byId('quality-filter').value = params.get('quality') ?? '';
byId('search').addEventListener('input', filterSoon);
byId('quality-filter').addEventListener('change', applyFilter);

const { live } = await startPage('devices');
await load(true);
live
  .on('value', (update) => {
    // A value for a device or metric not in the table: the configuration changed, refetch once.
    if (!applyValue(update)) reloadSoon();
  })
  .on('quality', applyQuality)
  // An edit or reload changed the configuration: devices may have come, gone or been renamed.
  .on('config', reloadSoon)
  .onResync(() => load(false))
  .start();
every(5000, refreshAges);
