// The rules of the configuration tree, checked in the browser as the operator types. They are
// the server's (`validate_applications` and `validate_device_children` in
// src/config/validate.rs, the types of src/config/schema.rs); the server checks again and stays
// authoritative. Pure functions: each returns [{field, message}] with `field` in the request's
// terms (`device_id`, `read_metric[1].metric_name`, `command_port`).

export const VALUE_TYPES = ['Float', 'Int', 'Bool', 'String'];
/** The class of every tree edit (src/config/diff.rs `KnobClass::Topology`). */
export const TOPOLOGY = 'topology';
export const CLASS_TEXT = {
  topology: 'applied live; connected OPC UA clients see it without reconnecting',
  hot: 'applied live by a reload',
  restart_required: 'takes effect only after a restart of opcgw',
};

const U32_MAX = 4294967295;
const STALE_MAX = 86400;
// The gateway's own OPC UA folder: `Gateway` and everything below it (src/naming.rs).
const RESERVED = 'Gateway';
const SEPARATOR = '/';
// Bounds on what a form accepts, beyond the server's rules: a name longer than this is a paste
// gone wrong, and the request body is capped at 64 KiB anyway.
export const MAX_TEXT = 256;
export const MAX_METRICS = 500;

function isReserved(id) {
  return id === RESERVED || id.startsWith(RESERVED + SEPARATOR);
}

/** Problems of an id (application_id, device_id) or a name that becomes a NodeId part. */
function idProblems(field, raw, { nodeId = true } = {}) {
  const value = String(raw ?? '');
  if (value.trim() === '') return [{ field, message: 'must not be empty' }];
  if (value.length > MAX_TEXT) return [{ field, message: `must be at most ${MAX_TEXT} characters` }];
  if (value.includes(SEPARATOR)) return [{ field, message: "must not contain '/'" }];
  if (nodeId && isReserved(value)) return [{ field, message: '"Gateway" is the NodeId of the gateway\'s own folder' }];
  return [];
}

function textProblems(field, raw) {
  const value = String(raw ?? '');
  if (value.trim() === '') return [{ field, message: 'must not be empty' }];
  if (value.length > MAX_TEXT) return [{ field, message: `must be at most ${MAX_TEXT} characters` }];
  return [];
}

/**
 * A whole number typed in a form: {value} (null for an empty optional field) or {error}.
 * Plain digits only: "1e3" or "12abc" are refused rather than guessed at.
 */
export function parseWhole(text, { min, max, optional = false }) {
  const raw = String(text ?? '').trim();
  if (raw === '') return optional ? { value: null } : { error: 'is required' };
  if (!/^\d+$/.test(raw)) return { error: 'must be a whole number' };
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) return { error: `${raw} is out of range; allowed ${min}-${max}` };
  return { value: n };
}

/** A finite number or an empty optional field: {value} or {error}. */
export function parseNumber(text) {
  const raw = String(text ?? '').trim();
  if (raw === '') return { value: null };
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return { error: 'must be a number' };
  const n = Number(raw);
  if (!Number.isFinite(n)) return { error: 'must be a finite number (nan and inf are not accepted)' };
  return { value: n };
}

/**
 * An application as typed: {application_id, application_name}.
 * known: {applications: [{application_id, application_name}], deviceIds: Set} of the whole
 * configuration; `editing` is the id of the application being renamed (excluded from uniqueness).
 */
export function applicationProblems(form, known, editing = null) {
  const problems = [];
  const others = known.applications.filter((a) => a.application_id !== editing);
  if (editing === null) {
    problems.push(...idProblems('application_id', form.application_id));
    if (others.some((a) => a.application_id === form.application_id)) {
      problems.push({ field: 'application_id', message: `"${form.application_id}" is used twice` });
    } else if (known.deviceIds.has(form.application_id)) {
      problems.push({ field: 'application_id', message: `"${form.application_id}" is also a device_id: both are NodeIds` });
    }
  }
  problems.push(...textProblems('application_name', form.application_name));
  // Application folders are siblings under Objects: equal browse names would be ambiguous.
  if (others.some((a) => a.application_name === form.application_name)) {
    problems.push({ field: 'application_name', message: `"${form.application_name}" is used twice` });
  }
  return problems;
}

/**
 * A device as typed: {device_id, device_name, stale_threshold_seconds (text), read_metric:
 * [{metric_name, chirpstack_metric_name, metric_type, metric_unit}]}.
 * known: {appIds: Set, deviceIds: Map(device_id -> application_id), deviceNames: [names of the
 * other devices of this application], badThreshold: seconds or null, commandNames: [names of
 * this device's commands, kept by an update]}.
 */
export function deviceProblems(form, known, editing = null) {
  const problems = [];
  if (editing === null) {
    problems.push(...idProblems('device_id', form.device_id));
    if (known.deviceIds.has(form.device_id)) {
      problems.push({ field: 'device_id', message: `"${form.device_id}" is used twice` });
    } else if (known.appIds.has(form.device_id)) {
      problems.push({ field: 'device_id', message: `"${form.device_id}" is also an application_id: both are NodeIds` });
    }
  }
  problems.push(...textProblems('device_name', form.device_name));
  if (known.deviceNames.includes(form.device_name)) {
    problems.push({ field: 'device_name', message: `"${form.device_name}" is used twice in this application` });
  }
  const stale = parseWhole(form.stale_threshold_seconds, { min: 1, max: STALE_MAX, optional: true });
  if (stale.error) {
    problems.push({ field: 'stale_threshold_seconds', message: stale.error });
  } else if (stale.value !== null && known.badThreshold !== null && stale.value >= known.badThreshold) {
    problems.push({ field: 'stale_threshold_seconds', message: `must be less than opcua.bad_threshold_seconds (${known.badThreshold})` });
  }
  if (form.read_metric.length > MAX_METRICS) {
    problems.push({ field: 'read_metric', message: `at most ${MAX_METRICS} metrics in one edit` });
  }
  // Metrics and commands are siblings under the device node: one browse-name space.
  const names = new Set(known.commandNames);
  const upstream = new Set();
  form.read_metric.forEach((metric, i) => {
    const at = `read_metric[${i}]`;
    problems.push(...idProblems(`${at}.metric_name`, metric.metric_name, { nodeId: false }));
    if (names.has(metric.metric_name)) {
      problems.push({ field: `${at}.metric_name`, message: `"${metric.metric_name}" is used twice in this device` });
    }
    names.add(metric.metric_name);
    problems.push(...textProblems(`${at}.chirpstack_metric_name`, metric.chirpstack_metric_name));
    if (upstream.has(metric.chirpstack_metric_name)) {
      problems.push({ field: `${at}.chirpstack_metric_name`, message: `"${metric.chirpstack_metric_name}" is used twice in this device` });
    }
    upstream.add(metric.chirpstack_metric_name);
    if (!VALUE_TYPES.includes(metric.metric_type)) {
      problems.push({ field: `${at}.metric_type`, message: `must be one of ${VALUE_TYPES.join(', ')}` });
    }
    if ((metric.metric_unit ?? '').length > MAX_TEXT) {
      problems.push({ field: `${at}.metric_unit`, message: `must be at most ${MAX_TEXT} characters` });
    }
  });
  return problems;
}

/**
 * A command as typed (every field text but command_confirmed and command_type).
 * known: {siblingNames: [metric names and the other commands' names of the device],
 * commandIds: [the other commands' command_id]}.
 */
export function commandProblems(form, known, editing = null) {
  const problems = [];
  if (editing === null) {
    problems.push(...idProblems('command_name', form.command_name, { nodeId: false }));
    if (known.siblingNames.includes(form.command_name)) {
      problems.push({ field: 'command_name', message: `"${form.command_name}" is already used by a metric or command of this device` });
    }
  }
  const id = parseWhole(form.command_id, { min: 0, max: U32_MAX });
  if (id.error) problems.push({ field: 'command_id', message: id.error });
  else if (known.commandIds.includes(id.value)) problems.push({ field: 'command_id', message: `${id.value} is used twice in this device` });
  // LoRaWAN application FPorts are 1-223; 0 is MAC commands, 224+ are reserved.
  const port = parseWhole(form.command_port, { min: 1, max: 223 });
  if (port.error) problems.push({ field: 'command_port', message: port.error });
  if (!VALUE_TYPES.includes(form.command_type)) {
    problems.push({ field: 'command_type', message: `must be one of ${VALUE_TYPES.join(', ')}` });
  }
  const min = parseNumber(form.command_min);
  const max = parseNumber(form.command_max);
  if (min.error) problems.push({ field: 'command_min', message: min.error });
  if (max.error) problems.push({ field: 'command_max', message: max.error });
  const ranged = (min.value ?? null) !== null || (max.value ?? null) !== null;
  if (ranged && !['Int', 'Float'].includes(form.command_type)) {
    problems.push({ field: 'command_min', message: 'a range applies only to Int or Float commands' });
  } else if (!min.error && !max.error && min.value !== null && max.value !== null && min.value > max.value) {
    problems.push({ field: 'command_min', message: 'must not be greater than command_max' });
  }
  return problems;
}

/** The JSON body of a command form (call only when commandProblems found nothing). */
export function commandBody(form) {
  const body = {
    command_name: form.command_name,
    command_id: parseWhole(form.command_id, { min: 0, max: U32_MAX }).value,
    command_confirmed: Boolean(form.command_confirmed),
    command_port: parseWhole(form.command_port, { min: 1, max: 223 }).value,
    command_type: form.command_type,
  };
  const min = parseNumber(form.command_min).value;
  const max = parseNumber(form.command_max).value;
  if (min !== null) body.command_min = min;
  if (max !== null) body.command_max = max;
  return body;
}

/** The JSON body of a device form (call only when deviceProblems found nothing). */
export function deviceBody(form, { creating }) {
  const body = { device_name: form.device_name };
  if (creating) body.device_id = form.device_id;
  const stale = parseWhole(form.stale_threshold_seconds, { min: 1, max: STALE_MAX, optional: true }).value;
  if (stale !== null) body.stale_threshold_seconds = stale;
  body.read_metric = form.read_metric.map((m) => {
    const metric = { metric_name: m.metric_name, chirpstack_metric_name: m.chirpstack_metric_name, metric_type: m.metric_type };
    if ((m.metric_unit ?? '').trim() !== '') metric.metric_unit = m.metric_unit;
    return metric;
  });
  return body;
}

/** The smallest command_id not yet used by the device (ids are u32, unique per device). */
export function nextCommandId(ids) {
  const used = new Set(ids);
  let id = 1;
  while (used.has(id)) id += 1;
  return id;
}
