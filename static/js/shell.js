// What every signed-in page shares: the top bar (navigation, connection state, user, sign-out),
// the session check and the page's live feed.
import { byId, el } from './dom.js';
import { currentSession, signOut } from './api.js';
import { LiveFeed } from './live.js';

const PAGES = [
  ['dashboard', 'index.html', 'Dashboard'],
  ['devices', 'devices.html', 'Devices'],
  ['commands', 'commands.html', 'Commands'],
  ['events', 'events.html', 'Events'],
  ['config', 'config.html', 'Configuration'],
  ['certificates', 'certificates.html', 'Certificates'],
];

function renderTopbar(current) {
  const bar = byId('topbar');
  const conn = el('span', { id: 'conn', class: 'conn conn-connecting', role: 'status', 'aria-live': 'polite', text: 'Connecting…' });
  const user = el('span', { id: 'user', class: 'user' });
  const signOutButton = el('button', { id: 'sign-out', type: 'button', text: 'Sign out' });
  signOutButton.addEventListener('click', () => {
    signOutButton.disabled = true;
    signOut();
  });
  bar.replaceChildren(
    el('a', { class: 'brand', href: 'index.html', text: 'opcgw' }),
    el(
      'nav',
      { 'aria-label': 'Console pages' },
      PAGES.map(([name, href, label]) => el('a', { href, text: label, 'aria-current': name === current ? 'page' : null })),
    ),
    el('div', { class: 'session' }, conn, user, signOutButton),
  );
  return { conn, user };
}

/**
 * Starts a signed-in page: draws the top bar, checks the session (going to sign-in without one)
 * and returns it with the page's live feed (not yet started: register handlers, then start()).
 */
export async function startPage(current) {
  const { conn, user } = renderTopbar(current);
  const session = await currentSession();
  user.textContent = session?.user ?? '';
  return { session, live: new LiveFeed(conn) };
}

/** Runs fn every `ms` while the tab is visible (and once when it becomes visible again). */
export function every(ms, fn) {
  const tick = () => {
    if (document.visibilityState === 'visible') fn();
  };
  document.addEventListener('visibilitychange', tick);
  return setInterval(tick, ms);
}
