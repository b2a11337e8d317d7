// Events: the live feed as a log (newest first, bounded), and the recent audit events
// (GET /api/audit: sign-ins, failures, sign-outs, expiries, commands).
import { byId, el, showMessage } from './dom.js';
import { api } from './api.js';
import { every, startPage } from './shell.js';
import { formatTime, formatValue } from './format.js';

const LOG_LIMIT = 500;
let paused = false;

function describe(kind, data) {
  switch (kind) {
    case 'value':
      return `${data.device_id} / ${data.metric} = ${formatValue(data.value)} (${data.quality ?? '?'})`;
    case 'quality':
      return `${data.device_id} / ${data.metric} is now ${data.quality}`;
    case 'upstream':
      return `upstream ${data.state}${data.reason ? `: ${data.reason}` : ''}`;
    case 'command':
      return `command #${data.id} ${data.command_name} for ${data.device_id}: ${data.state}${data.detail ? ` (${data.detail})` : ''}`;
    case 'health':
      return `${data.role} ${data.state}, ${data.restarts ?? 0} restart(s)`;
    case 'lagged':
      return `this page was too slow and missed ${data.missed} event(s); values were refetched`;
    default:
      return JSON.stringify(data);
  }
}

function logEvent(kind, data) {
  if (paused || (kind === 'value' && !byId('show-values').checked)) return;
  const list = byId('live-log');
  list.prepend(
    el(
      'li',
      { dataset: { kind } },
      el('span', { class: 'log-time', text: formatTime(new Date().toISOString()) }),
      el('span', { class: `badge k-${kind}`, text: kind }),
      el('span', { class: 'log-text', text: describe(kind, data) }),
    ),
  );
  while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
  byId('live-empty').hidden = true;
}

async function loadAudit() {
  try {
    const answer = await api('/api/audit');
    const rows = (answer.events ?? []).map((event) =>
      el(
        'tr',
        { dataset: { event: event.event } },
        el('td', { 'data-label': 'Time', class: 'nowrap', text: formatTime(event.time) }),
        el('td', { 'data-label': 'Event', class: 'mono', text: event.event }),
        el('td', { 'data-label': 'Source', text: event.source_ip ?? '—' }),
        el('td', { 'data-label': 'User', text: event.user ?? '—' }),
        el('td', { 'data-label': 'Detail', class: 'small', text: event.detail ?? '' }),
      ),
    );
    byId('audit').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'empty', text: 'No audit events yet.' }))]));
    showMessage(byId('audit-message'), null);
  } catch (error) {
    if (error.status !== 401) showMessage(byId('audit-message'), `Audit events unavailable: ${error.message}`, 'error');
  }
}

byId('pause').addEventListener('click', () => {
  paused = !paused;
  byId('pause').setAttribute('aria-pressed', String(paused));
  byId('pause').textContent = paused ? 'Resume' : 'Pause';
});
byId('clear-log').addEventListener('click', () => byId('live-log').replaceChildren());
byId('refresh-audit').addEventListener('click', loadAudit);

const { live } = await startPage('events');
await loadAudit();
for (const kind of ['value', 'quality', 'upstream', 'command', 'health', 'lagged']) live.on(kind, (data) => logEvent(kind, data));
live.onResync(loadAudit).start();
every(30000, loadAudit);
