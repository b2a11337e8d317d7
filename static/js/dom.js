// Building DOM nodes without innerHTML: data from the gateway is only ever set as text, so a
// device or metric name can never inject markup (and the CSP forbids inline script anyway).

/**
 * el('td', {class: 'x', text: 'hello', dataset: {id: 3}, onclick: fn}, child, ...)
 * Children may be nodes, strings (added as text) or null/undefined/false (skipped).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'style') throw new Error('inline styles are refused by the CSP: use a class');
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** The element with this id; throws with its name so a page/markup mismatch is obvious. */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`page markup has no #${id}`);
  return node;
}

/**
 * Replays the highlight animation on a node whose value just changed. Two classes with
 * identical animations alternate: changing the animation name restarts it without forcing a
 * layout (reading offsetWidth would, once per live event, on a page of a thousand rows).
 */
export function flash(node) {
  const next = node.classList.contains('flash') ? 'flash-again' : 'flash';
  node.classList.remove('flash', 'flash-again');
  node.classList.add(next);
}

/** Shows a message in a .message element (kind: ok | error | info), or hides it for null. */
export function showMessage(node, text, kind = 'info') {
  node.hidden = text === null;
  node.className = `message message-${kind}`;
  node.textContent = text ?? '';
}
