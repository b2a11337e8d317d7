// Sign-in: POST /api/session, keep the CSRF token for this tab, go back where the user was.
import { byId, showMessage } from './dom.js';
import { ApiError, api, rememberCsrfToken } from './api.js';

const PAGES = ['index.html', 'devices.html', 'device.html', 'commands.html', 'events.html'];

/** Only our own pages are valid targets: `next` comes from the URL, so refuse anything else. */
function nextPage() {
  const next = new URLSearchParams(location.search).get('next') ?? '';
  const match = /^\/?(?:[A-Za-z0-9_-]+\/)*([a-z]+\.html)(\?[A-Za-z0-9_.~%=&-]*)?$/.exec(next);
  if (match && PAGES.includes(match[1])) return match[1] + (match[2] ?? '');
  return 'index.html';
}

async function alreadySignedIn() {
  try {
    const session = await api('/api/session', { redirectOn401: false });
    rememberCsrfToken(session?.csrf_token);
    return true;
  } catch {
    return false;
  }
}

async function signIn(event) {
  event.preventDefault();
  const form = byId('login-form');
  const message = byId('login-message');
  const button = byId('sign-in');
  const user = form.user.value.trim();
  const password = form.password.value;
  if (!user || !password) {
    showMessage(message, 'Enter the user name and the password.', 'error');
    return;
  }
  button.disabled = true;
  showMessage(message, null);
  try {
    const session = await api('/api/session', { method: 'POST', body: { user, password }, redirectOn401: false });
    rememberCsrfToken(session?.csrf_token);
    location.assign(nextPage());
  } catch (error) {
    const status = error instanceof ApiError ? error.status : 0;
    let text = error.message;
    if (status === 401) text = 'Invalid user name or password.';
    else if (status === 429) text = 'Too many failed attempts from this address: wait a moment, then try again.';
    else if (status === 0) text = 'The gateway cannot be reached.';
    showMessage(message, text, 'error');
    form.password.value = '';
    form.password.focus();
  } finally {
    button.disabled = false;
  }
}

byId('login-form').addEventListener('submit', signIn);
if (await alreadySignedIn()) location.replace(nextPage());
else byId('user').focus();
