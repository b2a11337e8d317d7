// The one way the pages talk to the gateway: fetch with the session cookie, JSON both ways, the
// per-session CSRF token on every mutating request, and a trip to the sign-in page on 401.
//
// The CSRF token lives in sessionStorage (per tab, gone with the tab); a tab opened later fetches
// it from GET /api/session. The cookie itself is HttpOnly, so scripts never see the session.

const CSRF_KEY = 'opcgw.csrf_token';

export class ApiError extends Error {
  /**
   * `reason` is the configuration API's refusal reason (`ambient_drift`, `validation`...) and
   * `problems` its field-level findings [{field, message}]; both empty for other routes.
   */
  constructor(status, message, field = null, reason = null, problems = []) {
    super(message);
    this.status = status;
    this.field = field;
    this.reason = reason;
    this.problems = problems;
  }
}

/** The sign-in page, remembering where to come back to. */
export function loginUrl(next = location.pathname + location.search) {
  return `login.html?next=${encodeURIComponent(next)}`;
}

export function goToLogin() {
  sessionStorage.removeItem(CSRF_KEY);
  location.assign(loginUrl());
}

export function rememberCsrfToken(token) {
  if (typeof token === 'string' && token) sessionStorage.setItem(CSRF_KEY, token);
}

export function forgetCsrfToken() {
  sessionStorage.removeItem(CSRF_KEY);
}

async function csrfToken({ fetchIfMissing }) {
  const cached = sessionStorage.getItem(CSRF_KEY);
  if (cached || !fetchIfMissing) return cached;
  try {
    const session = await api('/api/session', { redirectOn401: false });
    rememberCsrfToken(session?.csrf_token);
    return session?.csrf_token ?? null;
  } catch {
    // No session: the request itself will be refused with 401 and handled there.
    return null;
  }
}

async function send(path, method, body, signal) {
  // X-Requested-With tells the gateway this is the console's script, not a person's browser
  // navigating: it answers 401 without a Basic challenge so no password dialog pops up.
  const headers = { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' };
  const mutating = !['GET', 'HEAD', 'OPTIONS'].includes(method);
  if (mutating) {
    headers['Content-Type'] = 'application/json';
    // Signing in creates the session: there is no token to fetch before it.
    const signingIn = method === 'POST' && path === '/api/session';
    const token = await csrfToken({ fetchIfMissing: !signingIn });
    if (token) headers['X-CSRF-Token'] = token;
  }
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new ApiError(0, 'the gateway cannot be reached');
  }
}

/**
 * Calls the JSON API. Resolves to the parsed body (null for 204); rejects with ApiError carrying
 * the status and the server's `error`/`field`/`reason`/`problems`. A 401 goes to the sign-in page unless
 * `redirectOn401` is false.
 */
export async function api(path, { method = 'GET', body, redirectOn401 = true, signal } = {}) {
  let response = await send(path, method, body, signal);
  if (response.status === 403 && method !== 'GET' && sessionStorage.getItem(CSRF_KEY)) {
    // A sign-in in another tab replaced the session and its token: fetch the new one, retry once.
    forgetCsrfToken();
    response = await send(path, method, body, signal);
  }
  if (response.status === 401 && redirectOn401) {
    goToLogin();
    throw new ApiError(401, 'not signed in');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const message = typeof data?.error === 'string' ? data.error : `the gateway answered HTTP ${response.status}`;
    const problems = Array.isArray(data?.problems)
      ? data.problems.filter((p) => typeof p?.field === 'string' && typeof p?.message === 'string')
      : [];
    throw new ApiError(
      response.status,
      message,
      typeof data?.field === 'string' ? data.field : null,
      typeof data?.reason === 'string' ? data.reason : null,
      problems,
    );
  }
  return data;
}

/** The signed-in session ({user, csrf_token, expires_at}); goes to sign-in when there is none. */
export async function currentSession() {
  const session = await api('/api/session');
  rememberCsrfToken(session?.csrf_token);
  return session;
}

/** Signs out (revokes the session server-side) and shows the sign-in page. */
export async function signOut() {
  try {
    await api('/api/session', { method: 'DELETE', redirectOn401: false });
  } catch {
    // Already signed out or unreachable: the sign-in page is the right place either way.
  }
  forgetCsrfToken();
  location.assign('login.html');
}

/** Path segment encoding for ids and names in URLs. */
export function seg(text) {
  return encodeURIComponent(String(text));
}
