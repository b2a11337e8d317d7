// Commands: a send form type-checked per command (type, min/max) with one idempotency key per
// intended submission (a double click or a retry after a network error sends one downlink), and
// the queue with states updating live from the `command` events.
import { byId, el, flash, showMessage } from './dom.js';
import { api, seg } from './api.js';
import { startPage } from './shell.js';
import { formatTime, stateBadge } from './format.js';
import { inputFor, newIdempotencyKey, parseCommandValue } from './command_value.js';

const QUEUE_LIMIT = 200;
/** After a command is accepted, the form takes no new one for this long: the second click of a
 * double click can come after a fast answer, and must not send a second downlink. */
const DOUBLE_CLICK_MS = 1000;
/** device_id -> device (with its commands) */
const devices = new Map();
/** command id -> {command, row, stateCell, detailCell, updatedCell} */
const queueRows = new Map();
let idempotencyKey = newIdempotencyKey();
let sending = false;

function selectedCommand() {
  const device = devices.get(byId('command-device').value);
  return device?.commands?.find((c) => c.command_name === byId('command-name').value) ?? null;
}

/** Any change of what would be sent is a new intent, so it gets a new key. */
function newIntent() {
  idempotencyKey = newIdempotencyKey();
  showValueError(null);
}

function showValueError(text) {
  const error = byId('value-error');
  error.hidden = text === null;
  error.textContent = text ?? '';
  byId('command-value').setAttribute('aria-invalid', String(text !== null));
}

function renderValueInput() {
  const command = selectedCommand();
  const old = byId('command-value');
  const spec = command ? inputFor(command) : { kind: 'text', hint: '' };
  let input;
  if (spec.kind === 'bool') {
    input = el('select', { id: 'command-value' }, el('option', { value: 'true', text: 'true' }), el('option', { value: 'false', text: 'false' }));
  } else {
    input = el('input', {
      id: 'command-value',
      type: 'text', // not type=number: it would turn a typo into "" and hide what was wrong
      inputmode: spec.kind === 'number' ? (spec.step === '1' ? 'numeric' : 'decimal') : null,
      autocomplete: 'off',
      placeholder: spec.kind === 'number' ? '0' : '',
    });
  }
  input.addEventListener('input', newIntent);
  input.addEventListener('change', newIntent);
  old.replaceWith(input);
  byId('value-hint').textContent = command ? `${command.command_type}: ${spec.hint}; port ${command.command_port}${command.command_confirmed ? ', confirmed' : ''}` : '';
  byId('send').disabled = !command;
  newIntent();
}

function renderCommandChoices() {
  const device = devices.get(byId('command-device').value);
  const options = (device?.commands ?? []).map((c) => el('option', { value: c.command_name, text: c.command_name }));
  byId('command-name').replaceChildren(...options);
  renderValueInput();
}

function renderDeviceChoices(preferred) {
  const withCommands = [...devices.values()].filter((d) => (d.commands ?? []).length);
  const label = (d) => (d.device_name && d.device_name !== d.device_id ? `${d.device_name} (${d.device_id})` : d.device_id);
  byId('command-device').replaceChildren(...withCommands.map((d) => el('option', { value: d.device_id, text: label(d) })));
  if (preferred && devices.has(preferred)) byId('command-device').value = preferred;
  byId('filter-device').replaceChildren(el('option', { value: '', text: 'All' }), ...[...devices.values()].map((d) => el('option', { value: d.device_id, text: label(d) })));
  if (withCommands.length === 0) showMessage(byId('send-message'), 'No device has a command configured.', 'info');
  renderCommandChoices();
}

async function send(event) {
  event.preventDefault();
  if (sending) return;
  const deviceId = byId('command-device').value;
  const command = selectedCommand();
  if (!command) return;
  const parsed = parseCommandValue(command, byId('command-value').value);
  if (parsed.error) {
    showValueError(`The value ${parsed.error}.`);
    return;
  }
  showValueError(null);
  sending = true;
  byId('send').disabled = true;
  showMessage(byId('send-message'), 'Sending…', 'info');
  let accepted = false;
  try {
    const answer = await api(`/api/devices/${seg(deviceId)}/commands/${seg(command.command_name)}`, {
      method: 'POST',
      body: { value: parsed.value, idempotency_key: idempotencyKey },
    });
    showMessage(byId('send-message'), `Command #${answer.id} ${answer.state ?? 'queued'}: ${command.command_name} = ${JSON.stringify(parsed.value)} for ${deviceId}.`, 'ok');
    byId('send-message').dataset.commandId = String(answer.id);
    accepted = true;
    const now = new Date().toISOString();
    upsertRow({ id: answer.id, device_id: deviceId, command_name: command.command_name, state: answer.state ?? 'queued', detail: null, requested_by: null, created: now, updated: now }, false);
    loadQueue();
  } catch (error) {
    if (error.status === 401) return;
    if (error.status === 422 && error.field === 'value') {
      showValueError(`Refused by the gateway: ${error.message}`);
      showMessage(byId('send-message'), null);
      newIntent();
    } else {
      // Keep the key: a retry of the same intent must not send a second downlink.
      showMessage(byId('send-message'), `Not sent: ${error.message}`, 'error');
    }
  } finally {
    // The same intent until the guard ends: a click slipping through still carries the same key.
    const release = () => {
      if (accepted) idempotencyKey = newIdempotencyKey();
      sending = false;
      byId('send').disabled = !selectedCommand();
    };
    if (accepted) setTimeout(release, DOUBLE_CLICK_MS);
    else release();
  }
}

function matchesFilter(command) {
  const device = byId('filter-device').value;
  const state = byId('filter-state').value;
  return (!device || command.device_id === device) && (!state || command.state === state);
}

function queueRow(command) {
  const stateCell = el('td', { 'data-label': 'State' }, stateBadge(command.state));
  const detailCell = el('td', { 'data-label': 'Detail', class: 'small', text: command.detail ?? '—' });
  const updatedCell = el('td', { 'data-label': 'Updated', class: 'nowrap', text: formatTime(command.updated) });
  const row = el(
    'tr',
    { dataset: { commandId: String(command.id), state: command.state } },
    el('td', { 'data-label': '#', class: 'mono', text: String(command.id) }),
    el('td', { 'data-label': 'Device' }, el('a', { href: `device.html?id=${encodeURIComponent(command.device_id)}`, text: command.device_id })),
    el('td', { 'data-label': 'Command', text: command.command_name }),
    stateCell,
    detailCell,
    el('td', { 'data-label': 'Requested by', class: 'small', text: command.requested_by ?? '—' }),
    el('td', { 'data-label': 'Created', class: 'nowrap', text: formatTime(command.created) }),
    updatedCell,
  );
  return { command: { ...command }, row, stateCell, detailCell, updatedCell };
}

/** Updates a known command's row in place, or puts a new one at the top (newest first). */
function upsertRow(command, highlight = true) {
  const known = queueRows.get(command.id);
  if (known) {
    Object.assign(known.command, Object.fromEntries(Object.entries(command).filter(([, v]) => v !== null && v !== undefined)));
    if (command.detail === null) known.command.detail = null;
    known.row.dataset.state = known.command.state;
    known.stateCell.replaceChildren(stateBadge(known.command.state));
    known.detailCell.textContent = known.command.detail ?? '—';
    known.updatedCell.textContent = formatTime(known.command.updated);
    known.row.hidden = !matchesFilter(known.command);
    if (highlight) flash(known.row);
    return;
  }
  if (!matchesFilter(command)) return;
  const entry = queueRow(command);
  queueRows.set(command.id, entry);
  byId('queue').querySelector('.empty')?.closest('tr')?.remove();
  byId('queue').prepend(entry.row);
  if (highlight) flash(entry.row);
}

async function loadQueue() {
  const params = new URLSearchParams({ limit: String(QUEUE_LIMIT) });
  if (byId('filter-device').value) params.set('device', byId('filter-device').value);
  if (byId('filter-state').value) params.set('state', byId('filter-state').value);
  try {
    const answer = await api(`/api/commands?${params}`);
    queueRows.clear();
    const rows = (answer.commands ?? []).map((command) => {
      const entry = queueRow(command);
      queueRows.set(command.id, entry);
      return entry.row;
    });
    byId('queue').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 8, class: 'empty', text: 'No commands match.' }))]));
    showMessage(byId('queue-message'), null);
  } catch (error) {
    if (error.status !== 401) showMessage(byId('queue-message'), `Queue unavailable: ${error.message}`, 'error');
  }
}

async function loadDevices() {
  const answer = await api('/api/devices');
  devices.clear();
  for (const application of answer.applications ?? []) {
    for (const device of application.devices ?? []) devices.set(device.device_id, device);
  }
}

const params = new URLSearchParams(location.search);
byId('command-form').addEventListener('submit', send);
byId('command-device').addEventListener('change', renderCommandChoices);
byId('command-name').addEventListener('change', renderValueInput);
byId('filter-device').addEventListener('change', loadQueue);
byId('filter-state').addEventListener('change', loadQueue);

const { live } = await startPage('commands');
try {
  await loadDevices();
  renderDeviceChoices(params.get('device'));
  if (params.get('device') && devices.has(params.get('device'))) byId('filter-device').value = params.get('device');
} catch (error) {
  if (error.status !== 401) showMessage(byId('send-message'), `Devices unavailable: ${error.message}`, 'error');
}
await loadQueue();
async function reloadDevices() {
  try {
    await loadDevices();
    renderDeviceChoices(byId('command-device').value);
  } catch (error) {
    if (error.status !== 401) showMessage(byId('send-message'), `Devices unavailable: ${error.message}`, 'error');
  }
}

live
  .on('command', (command) => upsertRow(command))
  // An edit or reload changed the configuration: commands may have come or gone.
  .on('config', reloadDevices)
  .onResync(loadQueue)
  .start();
