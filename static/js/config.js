// Configuration: the tree of applications -> devices -> metrics and commands, with forms that
// edit it (each edit is one request, applied live by the gateway, see /api/applications), and
// the settings view (every other knob, read-only, with its class and where its value comes
// from). The selection lives in the URL (?app=…&device=…, ?tab=settings) so a view can be
// linked and the back button works.
import { byId, el, showMessage } from './dom.js';
import { api, seg } from './api.js';
import { startPage } from './shell.js';
import { confirmDelete, openEditor } from './config_editor.js';
import {
  CLASS_TEXT,
  TOPOLOGY,
  VALUE_TYPES,
  applicationProblems,
  commandBody,
  commandProblems,
  deviceBody,
  deviceProblems,
  nextCommandId,
} from './config_rules.js';

const view = {
  /** GET /api/config, or null when the gateway does not answer it */
  config: null,
  configError: null,
  /** [{application_id, application_name, device_count, devices: [{device_id, device_name, metric_count, command_count}]}] */
  applications: [],
  /** GET .../devices/{d} of the selected device */
  device: null,
  selected: { app: null, device: null },
  tab: 'tree',
};

// -- what the rules need to know ------------------------------------------------------------------

function editing() {
  if (view.config?.editing) return view.config.editing;
  return { enabled: false, reason: view.configError ?? 'the configuration is not loaded yet' };
}

function setting(key) {
  return view.config?.settings?.find((s) => s.key === key)?.value ?? null;
}

/** The environment variable that sets this application's own keys (deviceId null) or a device. */
function lockOf(applicationId, deviceId = null) {
  const lock = (view.config?.env_locked ?? []).find((l) => l.application_id === applicationId && (l.device_id ?? null) === deviceId);
  return lock?.variable ?? null;
}

function known() {
  const deviceIds = new Map();
  for (const app of view.applications) for (const d of app.devices) deviceIds.set(d.device_id, app.application_id);
  const bad = setting('opcua.bad_threshold_seconds');
  return {
    applications: view.applications,
    appIds: new Set(view.applications.map((a) => a.application_id)),
    deviceIds,
    badThreshold: typeof bad === 'number' ? bad : null,
  };
}

function selectedApp() {
  return view.applications.find((a) => a.application_id === view.selected.app) ?? null;
}

// -- loading ------------------------------------------------------------------------------------------

async function loadConfig() {
  try {
    view.config = await api('/api/config');
    view.configError = null;
  } catch (error) {
    if (error.status === 401) throw error;
    view.config = null;
    view.configError = `the gateway's configuration is unavailable (${error.message})`;
  }
}

async function loadTree() {
  const answer = await api('/api/applications');
  const details = await Promise.all(
    (answer.applications ?? []).map(async (app) => {
      try {
        const detail = await api(`/api/applications/${seg(app.application_id)}`);
        return { ...app, devices: detail.devices ?? [] };
      } catch (error) {
        if (error.status === 404) return null; // deleted meanwhile
        throw error;
      }
    }),
  );
  view.applications = details.filter(Boolean);
  if (answer.editing && view.config) view.config.editing = answer.editing;
}

async function loadDevice() {
  const { app, device } = view.selected;
  if (!app || !device) {
    view.device = null;
    return;
  }
  // The previous answer stays in view.device until this one arrives: a click on Edit during a
  // refresh still has a device to edit.
  try {
    view.device = await api(`/api/applications/${seg(app)}/devices/${seg(device)}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    view.device = null;
    view.selected.device = null;
  }
}

/** Everything again: after an edit, a reload, a `config` event or a reconnect. */
async function loadAll() {
  try {
    await loadConfig();
    await loadTree();
    if (view.selected.app && !selectedApp()) view.selected = { app: null, device: null };
    await loadDevice();
    render();
  } catch (error) {
    if (error.status !== 401) showMessage(byId('config-message'), `Configuration unavailable: ${error.message}`, 'error');
  }
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(loadAll, 300);
}

// -- navigation -------------------------------------------------------------------------------------

function readUrl() {
  const params = new URLSearchParams(location.search);
  view.tab = params.get('tab') === 'settings' ? 'settings' : 'tree';
  view.selected = { app: params.get('app'), device: params.get('app') ? params.get('device') : null };
}

function urlFor({ app = null, device = null, tab = 'tree' }) {
  const params = new URLSearchParams();
  if (tab === 'settings') params.set('tab', 'settings');
  if (app) params.set('app', app);
  if (app && device) params.set('device', device);
  const query = params.toString();
  return `config.html${query ? `?${query}` : ''}`;
}

async function navigate(target) {
  history.pushState(null, '', urlFor(target));
  readUrl();
  await loadDevice().catch(() => {});
  render();
  const panel = target.device ? 'device-panel' : target.app ? 'devices-panel' : null;
  if (panel) byId(panel).scrollIntoView({ block: 'start', behavior: 'smooth' });
}

function link(text, target, attrs = {}) {
  const a = el('a', { href: urlFor(target), text, ...attrs });
  a.addEventListener('click', (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    navigate(target);
  });
  return a;
}

function actionButton(text, action, id, onClick, { disabled = false, title = null, danger = false } = {}) {
  const button = el('button', { type: 'button', class: danger ? 'danger small-button' : 'small-button', text, disabled, title, dataset: { action, id } });
  button.addEventListener('click', onClick);
  return button;
}

// -- rendering ----------------------------------------------------------------------------------------

function render() {
  renderEditing();
  byId('tab-tree').setAttribute('aria-selected', String(view.tab === 'tree'));
  byId('tab-settings').setAttribute('aria-selected', String(view.tab === 'settings'));
  byId('tree-view').hidden = view.tab !== 'tree';
  byId('settings-view').hidden = view.tab !== 'settings';
  renderApplications();
  renderDevices();
  renderDevice();
  renderSettings();
}

function renderEditing() {
  const status = editing();
  const node = byId('editing-status');
  if (status.enabled) {
    showMessage(node, null);
  } else {
    showMessage(node, `Editing is off: ${status.reason ?? 'the gateway does not allow it'}. The configuration is shown read-only.`, 'info');
  }
  node.dataset.enabled = String(status.enabled);
  byId('add-application').disabled = !status.enabled;
}

function lockedTitle(variable) {
  return variable ? `set by the environment variable ${variable}; unset it to edit it here` : null;
}

function renderApplications() {
  const can = editing().enabled;
  const rows = view.applications.map((app) => {
    const lock = lockOf(app.application_id);
    const blocked = !can || lock !== null;
    return el(
      'tr',
      { dataset: { applicationId: app.application_id }, class: app.application_id === view.selected.app ? 'selected' : null },
      el('td', { 'data-label': 'Application' }, link(app.application_name, { app: app.application_id }, { class: 'device-name' }), lock ? el('div', { class: 'muted small lock', text: `read-only: ${lock}` }) : null),
      el('td', { 'data-label': 'Id', class: 'mono small', text: app.application_id }),
      el('td', { 'data-label': 'Devices', text: String(app.devices.length) }),
      el(
        'td',
        { 'data-label': 'Actions', class: 'actions' },
        actionButton('Rename', 'rename-application', app.application_id, () => renameApplication(app), { disabled: blocked, title: lockedTitle(lock) }),
        actionButton('Delete', 'delete-application', app.application_id, () => deleteApplication(app), { disabled: blocked, title: lockedTitle(lock), danger: true }),
      ),
    );
  });
  byId('applications').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4, class: 'empty', text: 'No application is configured.' }))]));
}

function renderDevices() {
  const app = selectedApp();
  byId('devices-panel').hidden = !app;
  if (!app) return;
  const can = editing().enabled;
  const appLock = lockOf(app.application_id);
  byId('devices-title').replaceChildren(`Devices of ${app.application_name} `, el('span', { class: 'muted small mono', text: app.application_id }));
  showMessage(byId('application-lock'), appLock ? `This application's name is ${lockedTitle(appLock)}.` : null, 'info');
  byId('add-device').disabled = !can;
  const rows = app.devices.map((device) => {
    const lock = lockOf(app.application_id, device.device_id);
    const blocked = !can || lock !== null || device.discovered;
    const target = { app: app.application_id, device: device.device_id };
    return el(
      'tr',
      { dataset: { deviceId: device.device_id }, class: device.device_id === view.selected.device ? 'selected' : null },
      el('td', { 'data-label': 'Device' }, link(device.device_name, target, { class: 'device-name' }), lock ? el('div', { class: 'muted small lock', text: `read-only: ${lock}` }) : null, device.discovered ? el('div', { class: 'muted small lock', text: 'discovered from ChirpStack: write it in the file to refine it' }) : null),
      el('td', { 'data-label': 'Id', class: 'mono small', text: device.device_id }),
      el('td', { 'data-label': 'Metrics', text: String(device.metric_count ?? 0) }),
      el('td', { 'data-label': 'Commands', text: String(device.command_count ?? 0) }),
      el(
        'td',
        { 'data-label': 'Actions', class: 'actions' },
        actionButton('Open', 'open-device', device.device_id, () => navigate(target)),
        actionButton('Delete', 'delete-device', device.device_id, () => deleteDevice(app, device), { disabled: blocked, title: lockedTitle(lock), danger: true }),
      ),
    );
  });
  byId('devices').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'empty', text: 'No device in this application yet.' }))]));
}

/** The loaded device, if it is the one selected (a refresh may still be on its way). */
function selectedDevice() {
  return view.device && view.device.device_id === view.selected.device ? view.device : null;
}

function renderDevice() {
  const device = selectedDevice();
  const app = selectedApp();
  byId('device-panel').hidden = !device || !app;
  if (!device || !app) return;
  const can = editing().enabled;
  const lock = lockOf(app.application_id, device.device_id);
  const blocked = !can || lock !== null;
  byId('device-panel').dataset.deviceId = device.device_id;
  byId('device-title').replaceChildren(`${device.device_name} `, el('span', { class: 'muted small mono', text: device.device_id }));
  const stale = typeof device.stale_threshold_seconds === 'number' ? `${device.stale_threshold_seconds} s (this device)` : `${setting('opcua.stale_threshold_seconds') ?? '?'} s (opcua.stale_threshold_seconds)`;
  byId('device-summary').replaceChildren(`In ${app.application_name} · turns Uncertain after ${stale} · `, el('a', { href: `device.html?id=${encodeURIComponent(device.device_id)}`, text: 'live values' }));
  showMessage(byId('device-lock'), lock ? `This device is ${lockedTitle(lock)}.` : null, 'info');
  byId('edit-device').disabled = blocked;
  byId('delete-device').disabled = blocked;
  byId('add-command').disabled = blocked;
  for (const id of ['edit-device', 'delete-device', 'add-command']) byId(id).title = lockedTitle(lock) ?? '';

  const metrics = (device.read_metric ?? []).map((m) =>
    el(
      'tr',
      { dataset: { metric: m.metric_name } },
      el('td', { 'data-label': 'Metric', class: 'device-name', text: m.metric_name }),
      el('td', { 'data-label': 'ChirpStack field', class: 'mono small', text: m.chirpstack_metric_name }),
      el('td', { 'data-label': 'Type', text: m.metric_type }),
      el('td', { 'data-label': 'Unit', text: m.metric_unit ?? '—' }),
    ),
  );
  byId('metrics').replaceChildren(...(metrics.length ? metrics : [el('tr', {}, el('td', { colspan: 4, class: 'empty', text: 'No metric.' }))]));
  const commands = (device.command ?? []).map((c) =>
    el(
      'tr',
      { dataset: { command: c.command_name } },
      el('td', { 'data-label': 'Command', class: 'device-name', text: c.command_name }),
      el('td', { 'data-label': 'Id', text: String(c.command_id) }),
      el('td', { 'data-label': 'Port', text: String(c.command_port) }),
      el('td', { 'data-label': 'Type', text: c.command_type }),
      el('td', { 'data-label': 'Range', text: rangeText(c) }),
      el('td', { 'data-label': 'Confirmed', text: c.command_confirmed ? 'yes' : 'no' }),
      el(
        'td',
        { 'data-label': 'Actions', class: 'actions' },
        actionButton('Edit', 'edit-command', c.command_name, () => editCommand(app, device, c), { disabled: blocked, title: lockedTitle(lock) }),
        actionButton('Delete', 'delete-command', c.command_name, () => deleteCommand(app, device, c), { disabled: blocked, title: lockedTitle(lock), danger: true }),
      ),
    ),
  );
  byId('commands').replaceChildren(...(commands.length ? commands : [el('tr', {}, el('td', { colspan: 7, class: 'empty', text: 'No command.' }))]));
}

function rangeText(c) {
  if (typeof c.command_min !== 'number' && typeof c.command_max !== 'number') return '—';
  return `${c.command_min ?? '−∞'} … ${c.command_max ?? '+∞'}`;
}

function valueText(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object')) return value.join(', ');
  return JSON.stringify(value);
}

const SOURCE_TEXT = { default: 'default', file: 'file', env: 'environment', secret_file: 'secret file' };

function renderSettings() {
  byId('config-path').textContent = view.config ? `File: ${view.config.path} (generation ${view.config.generation}).` : (view.configError ?? '');
  const words = byId('settings-search').value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const rows = (view.config?.settings ?? [])
    .filter((s) => {
      const text = `${s.key} ${valueText(s.value)} ${s.source} ${s.from ?? ''} ${s.class}`.toLowerCase();
      return words.every((w) => text.includes(w));
    })
    .map((s) =>
      el(
        'tr',
        { dataset: { key: s.key, class: s.class, source: s.source } },
        el('td', { 'data-label': 'Setting', class: 'mono small', text: s.key }),
        el('td', { 'data-label': 'Value', class: 'mono small', text: valueText(s.value) }),
        el('td', { 'data-label': 'Class' }, el('span', { class: `badge c-${s.class}`, text: s.class === 'restart_required' ? 'restart required' : s.class })),
        el('td', { 'data-label': 'Source' }, el('span', { class: `badge src-${s.source}`, text: SOURCE_TEXT[s.source] ?? s.source }), s.from ? el('div', { class: 'mono small', text: s.from }) : null),
      ),
    );
  byId('settings').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4, class: 'empty', text: view.config ? 'No setting matches.' : 'Settings unavailable.' }))]));
}

// -- edits ------------------------------------------------------------------------------------------

/** After a successful edit: say what happened and how it applies, then show the new state. */
function applied(text, result) {
  const kind = result?.class ?? TOPOLOGY;
  const generation = result?.generation !== undefined ? ` (generation ${result.generation})` : '';
  showMessage(byId('config-message'), `${text}${generation}: ${kind}, ${CLASS_TEXT[kind] ?? ''}.`, 'ok');
  byId('config-message').dataset.generation = String(result?.generation ?? '');
}

const APPLICATION_FIELDS = (creating) => [
  { name: 'application_id', label: 'Application id', readonly: !creating, hint: creating ? 'the ChirpStack application id; the folder\'s NodeId, cannot change later' : 'cannot change' },
  { name: 'application_name', label: 'Name (browse name in OPC UA)' },
];

function addApplication() {
  openEditor({
    title: 'Add application',
    fields: APPLICATION_FIELDS(true),
    values: { application_id: '', application_name: '' },
    validate: (s) => applicationProblems(s, known()),
    send: (s) => api('/api/applications', { method: 'POST', body: { application_id: s.application_id, application_name: s.application_name } }),
    afterReload: loadAll,
    onSuccess: async (result, s) => {
      applied(`Application "${s.application_name}" added`, result);
      await loadAll();
      navigate({ app: s.application_id });
    },
  });
}

function renameApplication(app) {
  openEditor({
    title: `Rename application ${app.application_name}`,
    fields: APPLICATION_FIELDS(false),
    values: { application_id: app.application_id, application_name: app.application_name },
    validate: (s) => applicationProblems(s, known(), app.application_id),
    send: (s) => api(`/api/applications/${seg(app.application_id)}`, { method: 'PUT', body: { application_name: s.application_name } }),
    afterReload: loadAll,
    onSuccess: (result, s) => {
      applied(`Application ${app.application_id} renamed to "${s.application_name}"`, result);
      loadAll();
    },
  });
}

function deleteApplication(app) {
  let blocked = null;
  if (app.devices.length > 0) blocked = `It still has ${app.devices.length} device${app.devices.length === 1 ? '' : 's'}: delete ${app.devices.length === 1 ? 'it' : 'them'} first.`;
  else if (view.applications.length === 1) blocked = 'It is the only application: add another one first.';
  confirmDelete({
    title: `Delete application ${app.application_name}?`,
    text: `The application ${app.application_name} (${app.application_id}) is removed from the configuration file. Its folder disappears from the OPC UA address space for connected clients.`,
    blocked,
    send: () => api(`/api/applications/${seg(app.application_id)}`, { method: 'DELETE' }),
    afterReload: loadAll,
    onSuccess: async () => {
      applied(`Application "${app.application_name}" deleted`, null);
      await navigate({});
      loadAll();
    },
  });
}

const DEVICE_FIELDS = (creating) => [
  { name: 'device_id', label: 'Device id (DevEUI)', readonly: !creating, hint: creating ? 'the ChirpStack device id; its NodeId, cannot change later' : 'cannot change' },
  { name: 'device_name', label: 'Name (browse name in OPC UA)' },
  { name: 'stale_threshold_seconds', label: 'Uncertain after (s, optional)', inputmode: 'numeric', hint: 'empty: opcua.stale_threshold_seconds; 1-86400' },
];

function deviceKnown(app, editingId, commandNames = []) {
  const all = known();
  if (editingId) all.deviceIds.delete(editingId);
  return {
    ...all,
    deviceNames: app.devices.filter((d) => d.device_id !== editingId).map((d) => d.device_name),
    commandNames,
  };
}

function addDevice() {
  const app = selectedApp();
  if (!app) return;
  openEditor({
    title: `Add a device to ${app.application_name}`,
    fields: DEVICE_FIELDS(true),
    values: { device_id: '', device_name: '', stale_threshold_seconds: '' },
    metrics: [{}],
    validate: (s) => deviceProblems(s, deviceKnown(selectedApp() ?? app, null)),
    send: (s) => api(`/api/applications/${seg(app.application_id)}/devices`, { method: 'POST', body: deviceBody(s, { creating: true }) }),
    afterReload: loadAll,
    onSuccess: async (result, s) => {
      applied(`Device "${s.device_name}" added with ${s.read_metric.length} metric${s.read_metric.length === 1 ? '' : 's'}`, result);
      await loadAll();
      navigate({ app: app.application_id, device: s.device_id });
    },
  });
}

function editDevice() {
  const app = selectedApp();
  const device = selectedDevice();
  if (!app || !device) return;
  const commandNames = (device.command ?? []).map((c) => c.command_name);
  openEditor({
    title: `Edit device ${device.device_name}`,
    fields: DEVICE_FIELDS(false),
    values: { device_id: device.device_id, device_name: device.device_name, stale_threshold_seconds: device.stale_threshold_seconds ?? '' },
    metrics: (device.read_metric ?? []).map((m) => ({ ...m, metric_unit: m.metric_unit ?? '' })),
    validate: (s) => deviceProblems(s, deviceKnown(selectedApp() ?? app, device.device_id, commandNames), device.device_id),
    send: (s) => api(`/api/applications/${seg(app.application_id)}/devices/${seg(device.device_id)}`, { method: 'PUT', body: deviceBody(s, { creating: false }) }),
    afterReload: loadAll,
    onSuccess: (result, s) => {
      applied(`Device ${device.device_id} saved as "${s.device_name}"`, result);
      loadAll();
    },
  });
}

function deleteDevice(app, device) {
  const detail = view.device?.device_id === device.device_id ? view.device : null;
  const names = detail ? [...(detail.read_metric ?? []).map((m) => `${m.metric_name} (metric)`), ...(detail.command ?? []).map((c) => `${c.command_name} (command)`)] : [];
  confirmDelete({
    title: `Delete device ${device.device_name}?`,
    text: `The device ${device.device_name} (${device.device_id}) is removed from the configuration file with its ${detail ? (detail.read_metric ?? []).length : device.metric_count ?? 0} metrics and ${detail ? (detail.command ?? []).length : device.command_count ?? 0} commands. Its OPC UA variables disappear for connected clients (their subscriptions to them end); the gateway stops reading it from ChirpStack.`,
    list: names,
    send: () => api(`/api/applications/${seg(app.application_id)}/devices/${seg(device.device_id)}`, { method: 'DELETE' }),
    afterReload: loadAll,
    onSuccess: async () => {
      applied(`Device "${device.device_name}" deleted`, null);
      await navigate({ app: app.application_id });
      loadAll();
    },
  });
}

const COMMAND_FIELDS = (creating) => [
  { name: 'command_name', label: 'Command name (browse name)', readonly: !creating, hint: creating ? 'cannot change later' : 'cannot change' },
  { name: 'command_id', label: 'Command id', inputmode: 'numeric', hint: 'unique in the device; 0-4294967295' },
  { name: 'command_port', label: 'LoRaWAN FPort', inputmode: 'numeric', hint: '1-223' },
  { name: 'command_type', label: 'Type', kind: 'select', options: VALUE_TYPES },
  { name: 'command_min', label: 'Minimum (optional)', inputmode: 'decimal', hint: 'Int and Float only' },
  { name: 'command_max', label: 'Maximum (optional)', inputmode: 'decimal', hint: 'Int and Float only' },
  { name: 'command_confirmed', label: 'Confirmed downlink (the device acknowledges it)', kind: 'checkbox' },
];

function commandKnown(device, editingName) {
  const others = (device.command ?? []).filter((c) => c.command_name !== editingName);
  return {
    siblingNames: [...(device.read_metric ?? []).map((m) => m.metric_name), ...others.map((c) => c.command_name)],
    commandIds: others.map((c) => c.command_id),
  };
}

function commandValues(c) {
  const text = (v) => (typeof v === 'number' ? String(v) : '');
  return { command_name: c.command_name, command_id: text(c.command_id), command_port: text(c.command_port), command_type: c.command_type ?? 'Int', command_min: text(c.command_min), command_max: text(c.command_max), command_confirmed: Boolean(c.command_confirmed) };
}

function commandsPath(app, device) {
  return `/api/applications/${seg(app.application_id)}/devices/${seg(device.device_id)}/commands`;
}

function addCommand() {
  const app = selectedApp();
  const device = selectedDevice();
  if (!app || !device) return;
  openEditor({
    title: `Add a command to ${device.device_name}`,
    fields: COMMAND_FIELDS(true),
    values: commandValues({ command_name: '', command_id: nextCommandId((device.command ?? []).map((c) => c.command_id)), command_type: 'Int' }),
    validate: (s) => commandProblems(s, commandKnown(view.device ?? device, null)),
    send: (s) => api(commandsPath(app, device), { method: 'POST', body: commandBody(s) }),
    afterReload: loadAll,
    onSuccess: (result, s) => {
      applied(`Command "${s.command_name}" added to ${device.device_name}`, result);
      loadAll();
    },
  });
}

function editCommand(app, device, command) {
  openEditor({
    title: `Edit command ${command.command_name}`,
    fields: COMMAND_FIELDS(false),
    values: commandValues(command),
    validate: (s) => commandProblems(s, commandKnown(view.device ?? device, command.command_name), command.command_name),
    send: (s) => api(`${commandsPath(app, device)}/${seg(command.command_name)}`, { method: 'PUT', body: commandBody(s) }),
    afterReload: loadAll,
    onSuccess: (result) => {
      applied(`Command "${command.command_name}" saved`, result);
      loadAll();
    },
  });
}

function deleteCommand(app, device, command) {
  confirmDelete({
    title: `Delete command ${command.command_name}?`,
    text: `The command ${command.command_name} of ${device.device_name} is removed from the configuration file. Its OPC UA variable disappears for connected clients, and nobody can send it any more (commands already queued keep their state).`,
    send: () => api(`${commandsPath(app, device)}/${seg(command.command_name)}`, { method: 'DELETE' }),
    afterReload: loadAll,
    onSuccess: () => {
      applied(`Command "${command.command_name}" deleted`, null);
      loadAll();
    },
  });
}

// -- start --------------------------------------------------------------------------------------------

byId('tab-tree').addEventListener('click', () => navigate({ ...view.selected, tab: 'tree' }));
byId('tab-settings').addEventListener('click', () => navigate({ ...view.selected, tab: 'settings' }));
byId('settings-search').addEventListener('input', renderSettings);
byId('add-application').addEventListener('click', addApplication);
byId('add-device').addEventListener('click', addDevice);
byId('edit-device').addEventListener('click', editDevice);
byId('delete-device').addEventListener('click', () => {
  const app = selectedApp();
  if (app && selectedDevice()) deleteDevice(app, selectedDevice());
});
byId('add-command').addEventListener('click', addCommand);
window.addEventListener('popstate', async () => {
  readUrl();
  await loadDevice().catch(() => {});
  render();
});

readUrl();
const { live } = await startPage('config');
await loadAll();
byId('tree-view').dataset.ready = 'true';
live
  .on('config', (event) => {
    // Another tab, SIGHUP or `opcgw ctl reload` made a new configuration live.
    if (event?.generation !== view.config?.generation) refreshSoon();
  })
  .onResync(loadAll)
  .start();
