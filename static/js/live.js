// The one live connection of a page: an EventSource on /api/events that reconnects by itself,
// shows its state in the top bar, and asks the page to refetch whatever it may have missed.
import { goToLogin } from './api.js';

// `config`: an edit or reload made a new configuration generation live.
const KINDS = ['value', 'quality', 'upstream', 'command', 'health', 'config', 'lagged'];
const MAX_BACKOFF_MS = 30000;

export class LiveFeed {
  /** @param {HTMLElement} indicator the top bar's connection-state element */
  constructor(indicator) {
    this.indicator = indicator;
    this.handlers = new Map(KINDS.map((kind) => [kind, []]));
    this.resyncHandlers = [];
    this.source = null;
    this.everOpened = false;
    this.backoffMs = 1000;
    this.retryTimer = null;
    this.countdownTimer = null;
    this.eventsReceived = 0;
    this.setState('connecting');
    window.addEventListener('pagehide', () => this.stop());
  }

  /** Calls fn(data) for each event of this kind (value, quality, upstream, command, health). */
  on(kind, fn) {
    this.handlers.get(kind)?.push(fn);
    return this;
  }

  /** Calls fn() after a reconnect or a `lagged` event: events were missed, refetch state. */
  onResync(fn) {
    this.resyncHandlers.push(fn);
    return this;
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    this.source?.close();
    this.source = null;
  }

  connect() {
    this.source?.close();
    const source = new EventSource('/api/events');
    this.source = source;
    source.onopen = () => {
      this.backoffMs = 1000;
      this.setState('live');
      if (this.everOpened) this.resync();
      this.everOpened = true;
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CONNECTING) {
        // The browser retries by itself after a dropped stream.
        this.setState('reconnecting');
      } else {
        // CLOSED: the server refused the stream (401, 503...): find out why, then retry ourselves.
        this.source = null;
        this.retryAfterRefusal();
      }
    };
    for (const kind of KINDS) {
      source.addEventListener(kind, (event) => this.dispatch(kind, event.data));
    }
  }

  async retryAfterRefusal() {
    try {
      const response = await fetch('/api/session', {
        headers: { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' },
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (response.status === 401) {
        goToLogin();
        return;
      }
    } catch {
      // Unreachable: keep retrying with backoff.
    }
    const delay = this.backoffMs + Math.floor(Math.random() * 500);
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    const retryAt = Date.now() + delay;
    const showCountdown = () => {
      const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      this.setState('offline', `Offline, retrying in ${secs} s`);
    };
    showCountdown();
    clearInterval(this.countdownTimer);
    this.countdownTimer = setInterval(showCountdown, 1000);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      clearInterval(this.countdownTimer);
      this.setState('connecting');
      this.connect();
    }, delay);
  }

  dispatch(kind, raw) {
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    this.eventsReceived += 1;
    this.indicator.dataset.events = String(this.eventsReceived);
    if (kind === 'lagged') this.resync();
    for (const fn of this.handlers.get(kind) ?? []) {
      try {
        fn(data);
      } catch (error) {
        console.error(`live ${kind} handler failed`, error);
      }
    }
  }

  resync() {
    for (const fn of this.resyncHandlers) {
      try {
        fn();
      } catch (error) {
        console.error('live resync handler failed', error);
      }
    }
  }

  setState(state, text) {
    const labels = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };
    this.state = state;
    this.indicator.className = `conn conn-${state}`;
    this.indicator.dataset.state = state;
    this.indicator.textContent = text ?? labels[state] ?? state;
    this.indicator.title = state === 'live' ? 'Live updates are arriving' : 'Live updates are paused; the page retries by itself';
  }
}
