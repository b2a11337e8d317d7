// Client certificates: the OPC UA clients' certificates the gateway has seen, rejected (waiting
// for a decision) and trusted, with Trust, Reject and Delete (asked first). Each action is one
// request; the list is fetched again after it so the page shows what is on disk.
import { byId, el, showMessage } from './dom.js';
import { api, seg } from './api.js';
import { startPage } from './shell.js';
import { formatTime, parseTime } from './format.js';

let certificates = [];
let busy = false;

function validity(cert) {
  const expired = cert.expired === true;
  const notYet = (parseTime(cert.not_before) ?? 0) > Date.now();
  return el(
    'div',
    {},
    el('div', { class: 'small nowrap', text: `${formatTime(cert.not_before)} →` }),
    el('div', { class: 'small nowrap', text: formatTime(cert.not_after) }),
    expired ? el('span', { class: 'badge c-expired', text: 'expired' }) : null,
    notYet ? el('span', { class: 'badge c-rejected', text: 'not yet valid' }) : null,
  );
}

async function act(cert, action) {
  if (busy) return;
  busy = true;
  const label = cert.subject || cert.thumbprint;
  try {
    const path = `/api/certificates/${seg(cert.thumbprint)}`;
    if (action === 'delete') await api(path, { method: 'DELETE' });
    else await api(`${path}/${action}`, { method: 'POST', body: {} });
    const done = { trust: 'trusted: the client may connect on the secured endpoints now', reject: 'rejected: the client is refused from its next connection', delete: 'deleted' }[action];
    showMessage(byId('certificates-message'), `${label} ${done}.`, 'ok');
  } catch (error) {
    if (error.status === 401) return;
    showMessage(byId('certificates-message'), `${label}: not ${action === 'delete' ? 'deleted' : `${action}ed`}: ${error.message}`, 'error');
  } finally {
    busy = false;
    await load();
  }
}

function askDelete(cert) {
  const dialog = byId('confirm');
  byId('confirm-title').textContent = 'Delete this certificate?';
  byId('confirm-text').textContent = `${cert.subject || cert.thumbprint} (${cert.state}, thumbprint ${cert.thumbprint}) is removed from the PKI directory${cert.file ? ` (${cert.file})` : ''}. ${cert.state === 'trusted' ? 'The client is refused from its next connection; ' : ''}if the client connects again its certificate lands among the rejected ones.`;
  showMessage(byId('confirm-message'), null);
  byId('confirm-ok').onclick = async () => {
    dialog.close();
    await act(cert, 'delete');
  };
  byId('confirm-cancel').onclick = () => dialog.close();
  dialog.showModal();
  byId('confirm-cancel').focus();
}

function button(text, action, cert, onClick, danger = false) {
  const b = el('button', { type: 'button', class: danger ? 'danger small-button' : 'small-button', text, dataset: { action, thumbprint: cert.thumbprint } });
  b.addEventListener('click', onClick);
  return b;
}

function row(cert) {
  const move = cert.state === 'rejected' ? button('Trust', 'trust', cert, () => act(cert, 'trust')) : button('Reject', 'reject', cert, () => act(cert, 'reject'));
  return el(
    'tr',
    { dataset: { thumbprint: cert.thumbprint, state: cert.state, expired: String(cert.expired === true) } },
    el('td', { 'data-label': 'Subject' }, el('div', { class: 'device-name', text: cert.subject || '(no subject)' }), cert.file ? el('div', { class: 'muted small mono', text: cert.file }) : null),
    el('td', { 'data-label': 'Application URI', class: 'mono small', text: cert.application_uri || '—' }),
    el('td', { 'data-label': 'Thumbprint', class: 'thumbprint', text: cert.thumbprint }),
    el('td', { 'data-label': 'Valid' }, validity(cert)),
    el('td', { 'data-label': 'Actions', class: 'actions' }, move, button('Delete', 'delete', cert, () => askDelete(cert), true)),
  );
}

function render() {
  for (const state of ['rejected', 'trusted']) {
    const list = certificates.filter((c) => c.state === state);
    const empty = state === 'rejected' ? 'No rejected certificate: no unknown client has tried a secured endpoint.' : 'No trusted client certificate.';
    byId(state).replaceChildren(...(list.length ? list.map(row) : [el('tr', {}, el('td', { colspan: 5, class: 'empty', text: empty }))]));
    byId(`${state}-count`).textContent = `(${list.length})`;
  }
}

async function load() {
  try {
    const answer = await api('/api/certificates');
    certificates = Array.isArray(answer?.certificates) ? answer.certificates : [];
    render();
    byId('rejected').dataset.ready = 'true';
  } catch (error) {
    if (error.status !== 401) showMessage(byId('certificates-message'), `Certificates unavailable: ${error.message}`, 'error');
  }
}

byId('refresh').addEventListener('click', load);
const { live } = await startPage('certificates');
await load();
live.onResync(load).start();
