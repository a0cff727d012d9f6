// Small DOM helpers shared by the views. Text that people typed only ever goes
// through textContent, never innerHTML, so a chat message cannot become markup.

export const byId = (id) => document.getElementById(id);

/** A fresh copy of a <template>'s first element. */
/** A new element; text goes in as text (never HTML), other options as attributes. */
export function element(tag, { className, text, testid, ...attributes } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  if (testid) node.dataset.testid = testid;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

export function fromTemplate(id) {
  return byId(id).content.firstElementChild.cloneNode(true);
}

/** Show one view (a section with data-view) and move focus to its heading. */
export function showView(name) {
  byId('boot').hidden = true;
  for (const view of document.querySelectorAll('[data-view]')) {
    view.hidden = view.dataset.view !== name;
  }
  const heading = document.querySelector(`[data-view="${name}"] h1`);
  // Focus the heading so screen readers announce where we are after a view change.
  heading?.focus({ preventScroll: true });
}

export function setFormError(element, message) {
  element.textContent = message ?? '';
  element.hidden = !message;
}

/** A short message in the corner; it goes away by itself. */
export function toast(message, { kind = 'info', timeout = 6000 } = {}) {
  const item = document.createElement('div');
  item.className = `toast toast-${kind}`;
  item.textContent = message;
  const box = byId('toasts');
  box.append(item);
  // Keep at most a few on screen: old ones are not worth a wall of text.
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => item.remove(), timeout);
}

/** Keyed, persistent messages above the call (media fallbacks, full call, ICE trouble). */
export class Notices {
  #list;
  #items = new Map();

  constructor(list) {
    this.#list = list;
  }

  set(key, text, kind = 'warn') {
    if (!text) {
      this.#items.get(key)?.remove();
      this.#items.delete(key);
      return;
    }
    let item = this.#items.get(key);
    if (!item) {
      item = document.createElement('li');
      item.dataset.key = key;
      this.#items.set(key, item);
      this.#list.append(item);
    }
    item.className = `notice notice-${kind}`;
    if (item.textContent !== text) item.textContent = text;
  }

  has(key) {
    return this.#items.has(key);
  }

  clear() {
    for (const item of this.#items.values()) item.remove();
    this.#items.clear();
  }
}

/** A stable hue for someone's avatar, from their id. */
export function hueFor(id) {
  let hash = 0;
  for (const char of id) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

export function initialOf(name) {
  return (name || '?').trim().charAt(0).toUpperCase() || '?';
}

export function formatTime(iso) {
  // The server speaks UTC; a timestamp without a zone is UTC too, not local time.
  const text = typeof iso === 'string' && !/(Z|[+-]\d\d:?\d\d)$/.test(iso) ? `${iso}Z` : iso;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return '';
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}

// Names are not unique: any number of guests may call themselves "alice2". Beside a
// name that more than one person in the room has, a short tag derived from the user id
// ("alice2 #3f9a") tells them apart, the same on every page and after every reload.
// Derived here, not sent by the server: the id is in every frame already, and the
// prototype's frame and response shapes stay as they are.
const namesakes = new Map(); // lower-cased name → ids of the people seen with it

/** Four hex digits from a user id (FNV-1a): stable, and the same for everyone. */
export function nameTag(userId) {
  let hash = 0x811c9dc5;
  for (const char of String(userId)) {
    hash ^= char.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `#${((hash >>> 16) ^ (hash & 0xffff)).toString(16).padStart(4, '0')}`;
}

/** Forget the names of the last room (a new room has its own namesakes). */
export function forgetNames() {
  namesakes.clear();
}

const keyOf = (username) => String(username ?? '').toLowerCase();

function isShared(userId, username) {
  const ids = namesakes.get(keyOf(username));
  return Boolean(ids && ids.size > 1 && ids.has(userId));
}

/** Remember that `userId` is called `username`; a new namesake re-tags every such name. */
export function noteName(userId, username) {
  if (!userId || !username) return;
  const key = keyOf(username);
  const ids = namesakes.get(key) ?? new Set();
  namesakes.set(key, ids);
  if (ids.has(userId)) return;
  ids.add(userId);
  if (ids.size === 2) {
    // The first one was shown without a tag: show it on every name of theirs too.
    for (const node of document.querySelectorAll('[data-name-key]')) {
      if (node.dataset.nameKey === key) fillName(node);
    }
  }
}

/** The name as text, with its tag when someone else in the room has the same name. */
export function displayName(userId, username) {
  noteName(userId, username);
  return isShared(userId, username) ? `${username} ${nameTag(userId)}` : username;
}

function fillName(node) {
  const { nameOf: userId, nameText: username, nameSuffix: suffix } = node.dataset;
  const parts = [username];
  if (isShared(userId, username)) {
    const tag = element('span', { className: 'name-tag', text: nameTag(userId), testid: 'name-tag' });
    parts.push(' ', tag);
  }
  if (suffix) parts.push(suffix);
  node.replaceChildren(...parts);
}

/**
 * Show a person's name in `node` (People list, chat, tiles, knocks: every place names
 * appear goes through here), with the tag when the name is shared and `suffix` after it.
 */
export function renderName(node, userId, username, suffix = '') {
  node.dataset.nameKey = keyOf(username);
  node.dataset.nameOf = userId ?? '';
  node.dataset.nameText = username ?? '';
  node.dataset.nameSuffix = suffix;
  noteName(userId, username);
  fillName(node);
}
