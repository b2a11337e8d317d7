// Dashboard: the health verdict at a glance, then the figures behind it (GET /api/status),
// refreshed every few seconds and at once when the live feed reports health, upstream or
// configuration changes.
import { byId, el, showMessage } from './dom.js';
import { api } from './api.js';
import { every, startPage } from './shell.js';
import { formatAge, formatBytes, formatDuration, formatNumber, formatTime, stateBadge } from './format.js';

const VERDICT_TITLE = { ok: 'All systems normal', degraded: 'Degraded', down: 'Down' };
const HEALTHY_ACTOR_STATES = ['running'];

/** Why the verdict is not "ok", in words an operator can act on. */
function reasons(status) {
  const out = [];
  const upstream = status.upstream ?? {};
  if (upstream.state && upstream.state !== 'connected') {
    out.push(`ChirpStack upstream is ${upstream.state}${upstream.reason ? `: ${upstream.reason}` : ''}`);
  }
  for (const actor of status.actors ?? []) {
    if (!HEALTHY_ACTOR_STATES.includes(actor.state)) {
      const retry = actor.next_retry ? `, next retry ${formatTime(actor.next_retry)}` : '';
      out.push(`${actor.role} is ${actor.state}${retry}${actor.last_error ? ` (${actor.last_error})` : ''}`);
    }
  }
  const quality = status.quality ?? {};
  if (quality.bad > 0) out.push(`${quality.bad} metric(s) Bad`);
  if (quality.uncertain > 0) out.push(`${quality.uncertain} metric(s) Uncertain`);
  if (status.streams?.failing > 0) out.push(`${status.streams.failing} event stream(s) failing`);
  if (status.streams?.polled_only > 0) out.push(`${status.streams.polled_only} device(s) beyond the event-stream pool: polled only, one value per minute at best`);
  if (status.poll?.failed_cycles > 0) out.push(`${status.poll.failed_cycles} failed poll cycle(s) since start`);
  return out;
}

function card(label, figure, detail, id) {
  return el('div', { class: 'card', id }, el('div', { class: 'label', text: label }), el('div', { class: 'figure', text: figure }), el('div', { class: 'detail', text: detail ?? '' }));
}

function render(status) {
  const verdict = ['ok', 'degraded', 'down'].includes(status.verdict) ? status.verdict : 'unknown';
  const box = byId('verdict');
  box.className = `verdict verdict-${verdict}`;
  box.dataset.verdict = verdict;
  byId('verdict-title').textContent = VERDICT_TITLE[verdict] ?? 'Unknown state';
  byId('verdict-reasons').replaceChildren(...reasons(status).map((text) => el('li', { text })));

  const upstream = status.upstream ?? {};
  const quality = status.quality ?? {};
  const ingest = status.ingest ?? {};
  byId('cards').replaceChildren(
    card('Upstream (ChirpStack)', upstream.state ?? '—', upstream.reason ?? (upstream.last_poll ? `last poll ${formatAge(upstream.last_poll)}` : 'no poll yet'), 'card-upstream'),
    card('Ingest rate', `${formatNumber(ingest.samples_per_second)} /s`, `${formatNumber(ingest.samples_total, 0)} samples since start`, 'card-ingest'),
    card('Quality', `${quality.good ?? 0} good`, `${quality.uncertain ?? 0} uncertain · ${quality.bad ?? 0} bad · ${quality.waiting ?? 0} waiting`, 'card-quality'),
    card('Polling', `${formatNumber(status.poll?.cycles, 0)} cycles`, `${status.poll?.failed_cycles ?? 0} failed`, 'card-poll'),
    card('Event streams', `${status.streams?.open ?? 0} open`, `${status.streams?.failing ?? 0} failing · ${status.streams?.polled_only ?? 0} polled only`, 'card-streams'),
    card('OPC UA sessions', String(status.opcua?.sessions ?? 0), 'clients connected now', 'card-opcua'),
    card('Storage', formatBytes(status.storage?.bytes), 'database size', 'card-storage'),
    card('Gateway', `v${status.version ?? '?'}`, `up ${formatDuration(status.uptime_seconds)} · config generation ${status.config_generation ?? '?'}${status.editing && !status.editing.enabled ? ' · editing off' : ''}`, 'card-gateway'),
  );

  const rows = (status.actors ?? []).map((actor) =>
    el(
      'tr',
      { dataset: { role: actor.role } },
      el('td', { 'data-label': 'Role', class: 'device-name', text: actor.role }),
      el('td', { 'data-label': 'State' }, stateBadge(actor.state)),
      el('td', { 'data-label': 'Restarts', text: String(actor.restarts ?? 0) }),
      el('td', { 'data-label': 'Next retry', text: actor.next_retry ? formatTime(actor.next_retry) : '—' }),
      el('td', { 'data-label': 'Last error', class: 'small', text: actor.last_error ?? '—' }),
    ),
  );
  byId('actors').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'empty', text: 'No actors reported.' }))]));
  byId('status-updated').textContent = `updated ${formatTime(new Date().toISOString())}`;
}

let loading = false;
async function refresh() {
  if (loading) return;
  loading = true;
  try {
    render(await api('/api/status'));
    showMessage(byId('status-message'), null);
  } catch (error) {
    if (error.status !== 401) showMessage(byId('status-message'), `Status unavailable: ${error.message}`, 'error');
  } finally {
    loading = false;
  }
}

let pending = null;
function refreshSoon() {
  clearTimeout(pending);
  pending = setTimeout(refresh, 300);
}

const { live } = await startPage('dashboard');
await refresh();
live
  .on('health', refreshSoon)
  .on('upstream', refreshSoon)
  // An edit or reload made a new configuration live: the generation and the metric counts change.
  .on('config', refreshSoon)
  .onResync(refreshSoon)
  .start();
every(5000, refresh);
