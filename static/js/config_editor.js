// The two dialogs of the configuration page: the editor (an application, a device with its
// metric rows, or a command), validated as the operator types, and the delete confirmation.
// Both send one edit, show the server's refusal where it belongs (a field's problem next to the
// field, the rest under the form) and handle `ambient_drift`: the file changed on disk, so the
// dialog offers "Reload from file" and then sends the same change again.
import { byId, el, showMessage } from './dom.js';
import { api } from './api.js';
import { CLASS_TEXT, TOPOLOGY, VALUE_TYPES } from './config_rules.js';

/** The DOM id of a form field named in the request's terms (`read_metric[1].metric_type`). */
export function fieldId(name) {
  return `f-${name.replace(/[^A-Za-z0-9_]+/g, '-').replace(/-+$/, '')}`;
}

/** "Change class: [topology] applied live; ...": what happens when this is applied. */
function renderClass(node, kind = TOPOLOGY) {
  node.replaceChildren('Change class: ', el('span', { class: `badge c-${kind}`, text: kind }), ` ${CLASS_TEXT[kind] ?? ''}.`);
  node.dataset.class = kind;
}

/** The refusal as a sentence for the operator; the server's text already says what to do. */
function refusalText(error) {
  if (error.status === 0) return error.message;
  return `Not applied: ${error.message}`;
}

/**
 * Sends `task.send()`; on `ambient_drift` shows the drift banner in `task.drift` whose button
 * reloads the file (POST /api/config/reload), lets the page refresh (`task.afterReload`, which
 * may veto the retry by returning false) and sends again.
 */
async function attempt(task) {
  task.setBusy(true);
  try {
    const result = await task.send();
    task.drift.hidden = true;
    task.onSuccess(result);
  } catch (error) {
    if (error.status === 401) return;
    if (error.reason === 'ambient_drift') {
      showDrift(task);
    } else if (!task.onRefusal?.(error)) {
      showMessage(task.message, refusalText(error), 'error');
    }
  } finally {
    task.setBusy(false);
  }
}

function showDrift(task) {
  const button = el('button', { type: 'button', id: 'reload-from-file', class: 'primary', text: 'Reload from file' });
  const note = el('p', { class: 'small', id: 'drift-note' });
  task.drift.replaceChildren(
    el('strong', { text: 'The configuration file changed on disk since the gateway loaded it.' }),
    el('p', { text: 'Nothing was written. Reload the file (it becomes the live configuration, including the hand edits) and this change is sent again on top of it.' }),
    button,
    note,
  );
  task.drift.hidden = false;
  showMessage(task.message, null);
  button.addEventListener('click', async () => {
    button.disabled = true;
    note.textContent = 'Reloading…';
    try {
      const answer = await api('/api/config/reload', { method: 'POST', body: {} });
      note.textContent = `Reloaded (generation ${answer?.generation ?? '?'}). Sending the change again…`;
      const goOn = await task.afterReload();
      if (goOn === false) {
        note.textContent = `Reloaded (generation ${answer?.generation ?? '?'}). The change no longer fits the file: see the fields above.`;
        return;
      }
      task.drift.hidden = true;
      await attempt(task);
    } catch (error) {
      if (error.status === 401) return;
      button.disabled = false;
      note.textContent = `The file on disk cannot be loaded: ${error.message} Fix the file by hand, then reload again.`;
    }
  });
}

// -- the editor -------------------------------------------------------------------------------

function input(spec, value) {
  const id = fieldId(spec.name);
  if (spec.kind === 'select') {
    const select = el('select', { id, name: spec.name, disabled: spec.readonly }, spec.options.map((o) => el('option', { value: o, text: o })));
    select.value = value ?? spec.options[0];
    return select;
  }
  if (spec.kind === 'checkbox') {
    return el('input', { id, name: spec.name, type: 'checkbox', checked: Boolean(value), disabled: spec.readonly });
  }
  return el('input', {
    id,
    name: spec.name,
    type: 'text',
    value: value ?? '',
    readonly: spec.readonly,
    inputmode: spec.inputmode,
    placeholder: spec.placeholder,
    autocomplete: 'off',
    spellcheck: 'false',
    maxlength: spec.maxlength ?? 256,
  });
}

function fieldBlock(spec, value, nodes) {
  const control = input(spec, value);
  const error = el('p', { class: 'field-error', id: `${fieldId(spec.name)}-error`, role: 'alert', hidden: true });
  nodes.set(spec.name, { control, error, spec });
  const label = el('label', { for: control.id, text: spec.label });
  if (spec.kind === 'checkbox') {
    return el('div', { class: 'field field-check', dataset: { field: spec.name } }, el('label', { for: control.id }, control, ` ${spec.label}`), error);
  }
  return el('div', { class: 'field', dataset: { field: spec.name } }, label, control, spec.hint ? el('span', { class: 'hint', text: spec.hint }) : null, error);
}

const METRIC_FIELDS = [
  { key: 'metric_name', label: 'Metric name (browse name)' },
  { key: 'chirpstack_metric_name', label: 'ChirpStack field' },
  { key: 'metric_type', label: 'Type', kind: 'select', options: VALUE_TYPES },
  { key: 'metric_unit', label: 'Unit (optional)' },
];

/**
 * Opens the editor.
 * opts: {title, fields: [{name, label, kind, options, readonly, hint, inputmode}], values,
 * metrics: null or [{metric_name, ...}] (the device form's rows), validate(state) -> problems,
 * send(state) -> Promise, afterReload() -> Promise<bool>, onSuccess(result, state)}.
 */
export function openEditor(opts) {
  const dialog = byId('editor');
  const form = byId('editor-form');
  const state = { ...opts.values };
  if (opts.metrics) state.read_metric = opts.metrics.map((m) => ({ metric_name: '', chirpstack_metric_name: '', metric_type: 'Float', metric_unit: '', ...m, touched: new Set() }));
  const touched = new Set();
  const nodes = new Map();
  /** Server problems by field, shown until that field changes. */
  let serverProblems = new Map();
  let submitted = false;
  let busy = false;

  byId('editor-title').textContent = opts.title;
  renderClass(byId('editor-class'));
  byId('editor-drift').hidden = true;
  showMessage(byId('editor-message'), null);

  const metricRows = el('div', { class: 'metric-rows', id: 'metric-rows' });
  const fields = el('div', { class: 'form-grid' }, opts.fields.map((spec) => fieldBlock(spec, state[spec.name], nodes)));
  const parts = [fields];
  if (opts.metrics) {
    const addMetric = el('button', { type: 'button', id: 'add-metric', text: 'Add metric' });
    addMetric.addEventListener('click', () => {
      state.read_metric.push({ metric_name: '', chirpstack_metric_name: '', metric_type: 'Float', metric_unit: '', touched: new Set() });
      renderMetricRows();
      nodes.get(`read_metric[${state.read_metric.length - 1}].metric_name`)?.control.focus();
    });
    const metricsError = el('p', { class: 'field-error', id: `${fieldId('read_metric')}-error`, role: 'alert', hidden: true });
    nodes.set('read_metric', { control: addMetric, error: metricsError, spec: { name: 'read_metric' } });
    parts.push(el('fieldset', { class: 'metrics-set' }, el('legend', { text: 'Metrics' }), metricRows, metricsError, addMetric));
  }
  byId('editor-fields').replaceChildren(...parts);

  function renderMetricRows() {
    for (const name of [...nodes.keys()]) if (name.startsWith('read_metric[')) nodes.delete(name);
    serverProblems = new Map([...serverProblems].filter(([name]) => !name.startsWith('read_metric[')));
    const rows = state.read_metric.map((metric, i) => {
      const remove = el('button', { type: 'button', class: 'danger-link', id: `remove-metric-${i}`, text: 'Remove', 'aria-label': `Remove metric ${i + 1}` });
      remove.addEventListener('click', () => {
        state.read_metric.splice(i, 1);
        renderMetricRows();
      });
      const blocks = METRIC_FIELDS.map((f) => fieldBlock({ ...f, name: `read_metric[${i}].${f.key}` }, metric[f.key], nodes));
      return el('div', { class: 'metric-row form-grid', dataset: { row: String(i) } }, blocks, el('div', { class: 'field' }, remove));
    });
    metricRows.replaceChildren(...(rows.length ? rows : [el('p', { class: 'muted small', text: 'No metric yet: a device without metrics shows only its commands.' })]));
    showProblems();
  }

  /** Where a field's value lives in `state`: [object, key]. */
  function slot(name) {
    const m = /^read_metric\[(\d+)\]\.(\w+)$/.exec(name);
    return m ? [state.read_metric[Number(m[1])], m[2]] : [state, name];
  }

  function isTouched(name) {
    const m = /^read_metric\[(\d+)\]\.(\w+)$/.exec(name);
    return submitted || (m ? state.read_metric[Number(m[1])]?.touched.has(m[2]) : touched.has(name));
  }

  function showProblems() {
    const client = new Map();
    for (const p of opts.validate(state)) if (!client.has(p.field)) client.set(p.field, p.message);
    for (const [name, { control, error }] of nodes) {
      const message = (isTouched(name) && client.get(name)) || serverProblems.get(name) || null;
      error.hidden = message === null;
      error.textContent = message ?? '';
      control.setAttribute('aria-invalid', String(message !== null));
    }
    return client;
  }

  function onInput(event) {
    const name = event.target?.name;
    if (!name || !nodes.has(name)) return;
    const [target, key] = slot(name);
    if (!target) return;
    target[key] = event.target.type === 'checkbox' ? event.target.checked : event.target.value;
    if (target.touched instanceof Set) target.touched.add(key);
    else touched.add(name);
    serverProblems.delete(name);
    showProblems();
  }

  /** The server's findings: each next to its field, the rest (unknown fields) under the form. */
  function onRefusal(error) {
    const problems = error.problems.length ? error.problems : error.field ? [{ field: error.field, message: error.message }] : [];
    if (problems.length === 0) return false;
    serverProblems = new Map();
    const elsewhere = [];
    for (const p of problems) {
      // A command's fields may come back as `command[0].command_port` (the device's terms).
      const name = nodes.has(p.field) ? p.field : p.field.replace(/^command\[\d+\]\./, '');
      if (!nodes.has(name)) elsewhere.push(`${p.field}: ${p.message}`);
      else if (!serverProblems.has(name)) serverProblems.set(name, p.message);
    }
    showProblems();
    showMessage(byId('editor-message'), elsewhere.length ? `Not applied: ${elsewhere.join('; ')}` : 'Not applied: the gateway refused the fields marked above.', 'error');
    const first = [...nodes.entries()].find(([name]) => serverProblems.has(name));
    first?.[1].control.focus();
    return true;
  }

  const task = {
    drift: byId('editor-drift'),
    message: byId('editor-message'),
    setBusy(on) {
      busy = on;
      byId('editor-submit').disabled = on;
    },
    send: () => opts.send(state),
    onRefusal,
    async afterReload() {
      await opts.afterReload();
      return showProblems().size === 0;
    },
    onSuccess(result) {
      dialog.close();
      opts.onSuccess(result, state);
    },
  };

  form.oninput = onInput;
  form.onchange = onInput;
  form.onsubmit = (event) => {
    event.preventDefault();
    if (busy) return;
    submitted = true;
    const client = showProblems();
    if (client.size > 0) {
      showMessage(byId('editor-message'), `Fix ${client.size === 1 ? 'the field' : `the ${client.size} fields`} marked above first.`, 'error');
      [...nodes.entries()].find(([name]) => client.has(name))?.[1].control.focus();
      return;
    }
    showMessage(byId('editor-message'), 'Applying…', 'info');
    attempt(task);
  };
  byId('editor-cancel').onclick = () => dialog.close();
  if (opts.metrics) renderMetricRows();
  showProblems();
  byId('editor-submit').disabled = false;
  dialog.showModal();
  nodes.values().next().value?.control.focus();
}

// -- the delete confirmation --------------------------------------------------------------------

/**
 * Asks before a delete. opts: {title, text, list: [strings], blocked: null or why it cannot be
 * deleted, send() -> Promise, afterReload() -> Promise, onSuccess()}.
 */
export function confirmDelete(opts) {
  const dialog = byId('confirm');
  byId('confirm-title').textContent = opts.title;
  byId('confirm-text').textContent = opts.text;
  byId('confirm-list').replaceChildren(...(opts.list ?? []).map((item) => el('li', { text: item })));
  renderClass(byId('confirm-class'));
  byId('confirm-drift').hidden = true;
  showMessage(byId('confirm-message'), opts.blocked ?? null, 'error');
  const ok = byId('confirm-ok');
  ok.disabled = Boolean(opts.blocked);
  const task = {
    drift: byId('confirm-drift'),
    message: byId('confirm-message'),
    setBusy(on) {
      ok.disabled = on;
    },
    send: opts.send,
    afterReload: async () => {
      await opts.afterReload();
      return true;
    },
    onSuccess() {
      dialog.close();
      opts.onSuccess();
    },
  };
  ok.onclick = () => {
    showMessage(byId('confirm-message'), 'Deleting…', 'info');
    attempt(task);
  };
  byId('confirm-cancel').onclick = () => dialog.close();
  dialog.showModal();
  byId('confirm-cancel').focus();
}
