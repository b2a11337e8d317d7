// Formatting of the API's values for people: times in the browser's zone, ages, values by type,
// quality badges. Pure functions except the badge builders.
import { el } from './dom.js';

export const QUALITIES = ['good', 'uncertain', 'bad', 'waiting'];
const QUALITY_LABEL = { good: 'Good', uncertain: 'Uncertain', bad: 'Bad', waiting: 'Waiting' };
// Rank of qualities, worst last: bad > uncertain > waiting > good.
const QUALITY_RANK = { good: 0, waiting: 1, uncertain: 2, bad: 3 };

/** Milliseconds since the epoch of an RFC 3339 string, or null. */
export function parseTime(text) {
  if (text === null || text === undefined) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

/** "21:40:01" today, "2026-11-28 21:40:01" another day, "—" for null. */
export function formatTime(text, now = Date.now()) {
  const ms = parseTime(text);
  if (ms === null) return '—';
  const d = new Date(ms);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (new Date(now).toDateString() === d.toDateString()) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** "just now", "12 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" for null. */
export function formatAge(text, now = Date.now()) {
  const ms = parseTime(text);
  if (ms === null) return 'never';
  const secs = Math.max(0, Math.round((now - ms) / 1000));
  if (secs < 2) return 'just now';
  if (secs < 120) return `${secs} s ago`;
  if (secs < 7200) return `${Math.round(secs / 60)} min ago`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}

/** "3 d 4 h", "2 h 5 min", "42 s". */
export function formatDuration(totalSecs) {
  if (typeof totalSecs !== 'number' || !Number.isFinite(totalSecs)) return '—';
  const s = Math.max(0, Math.floor(totalSecs));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatNumber(n, maxFractionDigits = 1) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return n.toLocaleString(undefined, { maximumFractionDigits: maxFractionDigits });
}

/** A metric or command value as text; null (never received) is "—". */
export function formatValue(value, type) {
  if (value === null || value === undefined) return '—';
  if (type === 'Bool' || typeof value === 'boolean') return value ? 'true' : 'false';
  if (type === 'Float' && typeof value === 'number') {
    return value.toLocaleString(undefined, { maximumFractionDigits: 4, useGrouping: false });
  }
  return String(value);
}

export function qualityLabel(quality) {
  return QUALITY_LABEL[quality] ?? 'Unknown';
}

/** The worse of two qualities (unknown strings count as bad: never hide a problem). */
export function worseQuality(a, b) {
  const rank = (q) => QUALITY_RANK[q] ?? 3;
  return rank(a) >= rank(b) ? a : b;
}

/**
 * A device's quality: the worst of the metrics that reported (the server's rule, see
 * `device_quality` in src/web/views.rs); `waiting` only while none has reported.
 */
export function worstQuality(qualities) {
  const reported = qualities.filter((q) => q !== 'waiting');
  if (reported.length === 0) return qualities.length > 0 ? 'waiting' : 'good';
  return reported.reduce((worst, q) => worseQuality(worst, q), 'good');
}

/** A Good/Uncertain/Bad/Waiting badge. */
export function qualityBadge(quality) {
  const badge = el('span', { class: 'badge' });
  setQualityBadge(badge, quality);
  return badge;
}

export function setQualityBadge(badge, quality) {
  const q = QUALITIES.includes(quality) ? quality : 'bad';
  badge.className = `badge q-${q}`;
  badge.textContent = qualityLabel(quality);
  badge.dataset.quality = q;
}

/** A badge for an actor, upstream or command state ("running", "backoff", "acknowledged"...). */
export function stateBadge(state) {
  const known = /^[a-z_]+$/.test(String(state)) ? state : 'unknown';
  return el('span', { class: `badge s-${known}`, text: state ?? 'unknown', dataset: { state: known } });
}
