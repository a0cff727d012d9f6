// The chat panel: history (older pages on scroll-up), live messages, typing
// indicator, editing and deleting one's own messages, emoji reactions. Message text is set with
// textContent only: whatever people type stays text.

import { api } from './api.js';
import { linkified } from './linkify.js';
import { reactionPicker, reactionsRow } from './reactions.js';
import { formatTime, fromTemplate, toast } from './ui.js';

const PAGE_SIZE = 50;
const MAX_CHARS = 4000;
const TYPING_RESEND_MS = 3_000; // while typing, say so again this often
const TYPING_IDLE_MS = 4_000; // stopped typing after this long without a key
const TYPING_SHOWN_MS = 6_000; // someone else's "typing" fades if not repeated
const NEAR_EDGE_PX = 60;
const MUTED_TEXT = 'You are muted in this room';
// Consecutive messages of one author this close together share one name and time.
const GROUP_WITHIN_MS = 5 * 60_000;

/** A server timestamp (UTC, with or without a zone) in milliseconds. */
function timeOf(iso) {
  if (typeof iso !== 'string') return Number.NaN;
  return Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(iso) ? iso : `${iso}Z`);
}

export class ChatPanel {
  #roomId;
  #self;
  #el;
  #send;
  #canModerate;
  #messages = new Map(); // id → {item, data, editing}
  #oldestId = null;
  #newestId = null;
  #hasMore = false;
  #loadingOlder = false;
  // Whether the reader is at the newest message: new ones then keep it in view.
  #pinned = true;
  #resizeObserver = null;
  #typingSentAt = 0;
  #typingIdle = null;
  #typists = new Map(); // user id → {name, timer}
  // The last text sent, until the server answers: a refusal (muted) gives it back.
  // (Sent even when we believe we are muted: the server's answer is the truth.)
  #lastSent = null;
  #abort = new AbortController();

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {{id: string, username: string}} options.self
   * @param {object} options.elements list, form, input, typing, announcer, older, refusal
   * @param {(frame: object) => boolean} options.send false when not connected
   * @param {boolean} [options.canModerate] may delete other people's messages
   */
  constructor({ roomId, self, elements, send, canModerate = false }) {
    this.#canModerate = canModerate;
    this.#roomId = roomId;
    this.#self = self;
    this.#el = elements;
    this.#send = send;
    const on = { signal: this.#abort.signal };
    const { list, form, input, older } = elements;
    form.addEventListener('submit', (event) => this.#submit(event), on);
    input.addEventListener('keydown', (event) => this.#onKey(event), on);
    input.addEventListener('input', () => this.#onInput(), on);
    older.addEventListener('click', () => this.loadOlder(), on);
    list.addEventListener(
      'scroll',
      () => {
        this.#pinned = this.#nearBottom();
        if (list.scrollTop < NEAR_EDGE_PX) this.loadOlder();
      },
      { ...on, passive: true },
    );
    // The pane changes size as panels come and go (people, live, a phone's keyboard):
    // a reader at the newest message stays there.
    this.#resizeObserver = new ResizeObserver(() => this.#keepPinned());
    this.#resizeObserver.observe(list);
  }

  /** The newest message id we have: where a reconnect's replay starts. */
  get lastId() {
    return this.#newestId ?? 0;
  }

  async loadInitial() {
    const page = await api.messages(this.#roomId, { limit: PAGE_SIZE });
    for (const message of page) this.#upsert(message);
    this.#hasMore = page.length === PAGE_SIZE;
    this.#updateOlderButton();
    this.#scrollToBottom();
  }

  async loadOlder() {
    if (this.#loadingOlder || !this.#hasMore || this.#oldestId === null) return;
    this.#loadingOlder = true;
    const { list } = this.#el;
    list.setAttribute('aria-busy', 'true');
    // Keep what the reader looks at in place while older messages go in above it.
    const fromBottom = list.scrollHeight - list.scrollTop;
    try {
      const page = await api.messages(this.#roomId, { limit: PAGE_SIZE, before: this.#oldestId });
      for (const message of page) this.#upsert(message);
      this.#hasMore = page.length === PAGE_SIZE;
      list.scrollTop = list.scrollHeight - fromBottom;
    } catch (error) {
      toast(`Could not load older messages: ${error.message}`, { kind: 'warn' });
    } finally {
      this.#loadingOlder = false;
      list.setAttribute('aria-busy', 'false');
      this.#updateOlderButton();
    }
  }

  /** After a reconnect: pick up edits and deletions made while we were away. */
  async reconcile() {
    try {
      const page = await api.messages(this.#roomId, { limit: PAGE_SIZE });
      for (const message of page) this.#upsert(message);
    } catch {
      // Not worth a message: live frames keep coming, the next reconnect tries again.
    }
  }

  /** A `message` frame, live or replayed. */
  receive(frame) {
    if (frame.user_id === this.#self.id && frame.content === this.#lastSent) this.#lastSent = null;
    const stick = this.#pinned || this.#nearBottom();
    const added = this.#upsert(frame);
    if (!added) return;
    this.#setTypist(frame.user_id, null);
    const own = frame.user_id === this.#self.id;
    if (own || stick) this.#scrollToBottom();
    if (!own) this.#announce(`${frame.username}: ${frame.content}`);
  }

  applyEdit({ id, content, edited_at: editedAt }) {
    const entry = this.#messages.get(id);
    if (!entry) return;
    this.#fill(entry, { ...entry.data, content, edited_at: editedAt ?? new Date().toISOString() });
    this.#keepPinned();
  }

  applyDelete({ id }) {
    const entry = this.#messages.get(id);
    if (!entry) return;
    this.#fill(entry, { ...entry.data, content: '', deleted: true });
  }

  /** A `reaction` frame: the message's reactions as they are now. */
  applyReaction({ id, reactions }) {
    const entry = this.#messages.get(id);
    if (!entry) return;
    this.#fill(entry, { ...entry.data, reactions });
    this.#keepPinned();
  }

  /** Promoted to moderator, or demoted: whether others' messages get a Delete button. */
  setCanModerate(canModerate) {
    this.#canModerate = canModerate;
    for (const entry of this.#messages.values()) this.#fill(entry, entry.data);
  }

  showTyping({ user_id: userId, username, typing }) {
    if (userId === this.#self.id) return;
    this.#setTypist(userId, typing ? username : null);
  }

  /** Someone left: they are not typing any more. */
  forget(userId) {
    this.#setTypist(userId, null);
  }

  announce(text) {
    this.#announce(text);
  }

  /** Muted by a moderator (or not any more): say so by the composer. */
  setMuted(muted) {
    this.#showRefusal(muted ? MUTED_TEXT : null);
    if (!muted) this.#lastSent = null;
  }

  /**
   * The server refused what we sent because we are muted: keep the text (it did not
   * vanish, it was not sent) and say why by the composer.
   */
  refusedAsMuted() {
    const { input } = this.#el;
    if (this.#lastSent && !input.value.trim()) {
      input.value = this.#lastSent;
      input.rows = Math.min(5, input.value.split('\n').length);
    }
    this.#lastSent = null;
    this.#showRefusal(`${MUTED_TEXT}: your message was not sent.`);
  }

  #showRefusal(text) {
    const note = this.#el.refusal;
    if (!note) return;
    note.textContent = text ?? '';
    note.hidden = !text;
  }

  destroy() {
    this.#abort.abort();
    this.#resizeObserver?.disconnect();
    clearTimeout(this.#typingIdle);
    for (const { timer } of this.#typists.values()) clearTimeout(timer);
    this.#typists.clear();
    this.#messages.clear();
    this.#el.list.replaceChildren();
    this.#el.typing.textContent = '';
    this.#el.older.hidden = true;
  }

  /** Add a message in id order, or refresh the one we have. Returns whether it was new. */
  #upsert(data) {
    const existing = this.#messages.get(data.id);
    if (existing) {
      this.#fill(existing, { ...existing.data, ...data });
      return false;
    }
    const item = fromTemplate('tpl-message');
    item.dataset.messageId = String(data.id);
    item.dataset.userId = data.user_id ?? '';
    const entry = { item, data, editing: false };
    this.#messages.set(data.id, entry);
    this.#fill(entry, data);
    // Most messages arrive newest-last; history pages go in before the rest.
    let next = null;
    for (let node = this.#el.list.lastElementChild; node; node = node.previousElementSibling) {
      if (Number(node.dataset.messageId) < data.id) break;
      next = node;
    }
    this.#el.list.insertBefore(item, next);
    this.#regroup(item);
    if (item.nextElementSibling) this.#regroup(item.nextElementSibling);
    this.#oldestId = this.#oldestId === null ? data.id : Math.min(this.#oldestId, data.id);
    this.#newestId = this.#newestId === null ? data.id : Math.max(this.#newestId, data.id);
    return true;
  }

  #fill(entry, data) {
    // A live message is never empty: empty content is a deletion (a replayed frame
    // of a deleted message carries no flag).
    const deleted = Boolean(data.deleted) || data.content === '';
    entry.data = { ...data, deleted };
    const { item } = entry;
    const own = data.user_id === this.#self.id;
    item.classList.toggle('own', own);
    item.classList.toggle('deleted', deleted);
    item.querySelector('.message-author').textContent = data.username;
    const time = item.querySelector('.message-time');
    time.dateTime = data.timestamp ?? '';
    time.textContent = formatTime(data.timestamp);
    item.querySelector('.message-edited').hidden = !data.edited_at || deleted;
    const content = item.querySelector('.message-content');
    if (deleted) content.textContent = 'Message deleted';
    else content.replaceChildren(linkified(data.content));
    item.querySelector('.message-reactions')?.remove();
    item.querySelector('.message-tools')?.remove();
    if (!deleted) {
      const toggle = (emoji, add) => {
        if (!this.#send({ type: 'reaction', id: data.id, emoji, add })) {
          toast('Not connected: the reaction was not sent.', { kind: 'warn' });
        }
      };
      const reactions = data.reactions ?? [];
      if (reactions.length) {
        item.querySelector('.message-line').after(reactionsRow(reactions, this.#self.id, toggle));
      }
      // Actions float over the message on hover or keyboard focus: a message is one line.
      const tools = document.createElement('div');
      tools.className = 'message-tools';
      tools.append(reactionPicker(reactions, this.#self.id, toggle));
      if (own || this.#canModerate) tools.append(...this.#actions(data.id, own));
      tools.hidden = entry.editing;
      item.append(tools);
    }
    if (deleted && entry.editing) {
      // Deleted (by a moderator, or in another tab) while we were editing it.
      item.querySelector('.message-edit')?.remove();
      item.querySelector('.message-line').hidden = false;
      entry.editing = false;
    }
  }

  /** Group a message under the one before it: same author, a few minutes apart. */
  #regroup(item) {
    const previous = item.previousElementSibling;
    const entry = this.#messages.get(Number(item.dataset.messageId));
    const before = previous && this.#messages.get(Number(previous.dataset.messageId));
    if (!entry || !before) {
      item.classList.remove('grouped');
      return;
    }
    const gap = timeOf(entry.data.timestamp) - timeOf(before.data.timestamp);
    const sameAuthor = before.data.user_id === entry.data.user_id;
    item.classList.toggle('grouped', sameAuthor && gap >= 0 && gap < GROUP_WITHIN_MS);
  }

  #actions(id, own) {
    const button = (text, label, action) => {
      const element = document.createElement('button');
      element.type = 'button';
      element.className = 'tool-button';
      element.textContent = text;
      element.setAttribute('aria-label', label);
      element.addEventListener('click', action);
      return element;
    };
    // Only authors edit; the room's owner and moderators may also delete.
    const buttons = [];
    if (own) buttons.push(button('Edit', 'Edit your message', () => this.#startEdit(id)));
    buttons.push(
      button('Delete', own ? 'Delete your message' : 'Delete this message', () => this.#delete(id)),
    );
    return buttons;
  }

  #startEdit(id) {
    const entry = this.#messages.get(id);
    if (!entry || entry.editing || entry.data.deleted) return;
    entry.editing = true;
    const { item } = entry;
    const line = item.querySelector('.message-line');
    item.querySelector('.message-tools').hidden = true;
    const form = document.createElement('form');
    form.className = 'message-edit';
    // The field's name comes from aria-label: wrapping it in a visually hidden label
    // shrank the field itself to nothing.
    const field = document.createElement('textarea');
    field.rows = 2;
    field.maxLength = MAX_CHARS;
    field.value = entry.data.content;
    field.dataset.testid = 'message-edit-input';
    field.setAttribute('aria-label', 'Edit message');
    const save = document.createElement('button');
    save.type = 'submit';
    save.className = 'button primary small';
    save.textContent = 'Save';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'button small';
    cancel.textContent = 'Cancel';
    form.append(field, save, cancel);

    const finish = () => {
      form.remove();
      line.hidden = false;
      entry.editing = false;
      const tools = item.querySelector('.message-tools');
      if (tools) tools.hidden = false;
      tools?.querySelector('.tool-button')?.focus();
    };
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = field.value.trim();
      if (!text || text === entry.data.content) {
        finish();
        return;
      }
      // The change shows when the server confirms it (message_edited), for everyone alike.
      if (!this.#send({ type: 'edit', id, content: text })) {
        toast('Not connected: the change was not saved.', { kind: 'warn' });
        return;
      }
      finish();
    });
    cancel.addEventListener('click', finish);
    field.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') finish();
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    line.hidden = true;
    line.after(form);
    field.focus();
  }

  #delete(id) {
    // A native confirm: accessible, keyboard-friendly and enough for this.
    if (!window.confirm('Delete this message for everyone?')) return;
    if (!this.#send({ type: 'delete', id })) {
      toast('Not connected: the message was not deleted.', { kind: 'warn' });
    }
  }

  #submit(event) {
    event.preventDefault();
    const { input } = this.#el;
    const content = input.value.trim();
    if (!content) return;
    if (content.length > MAX_CHARS) {
      toast(`Messages can be at most ${MAX_CHARS} characters.`, { kind: 'warn' });
      return;
    }
    if (!this.#send({ type: 'message', content })) {
      // Keep the text so nothing typed is lost; the socket is reconnecting.
      toast('Not connected: your message was not sent. Reconnecting…', { kind: 'warn' });
      return;
    }
    this.#lastSent = content;
    input.value = '';
    input.rows = 1;
    this.#stopTyping();
  }

  #onKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.#el.form.requestSubmit();
    }
  }

  #onInput() {
    const { input } = this.#el;
    input.rows = Math.min(5, input.value.split('\n').length);
    if (!input.value.trim()) {
      this.#stopTyping();
      return;
    }
    const now = Date.now();
    const due = now - this.#typingSentAt > TYPING_RESEND_MS;
    if (due && this.#send({ type: 'typing', typing: true })) {
      this.#typingSentAt = now;
    }
    clearTimeout(this.#typingIdle);
    this.#typingIdle = setTimeout(() => this.#stopTyping(), TYPING_IDLE_MS);
  }

  #stopTyping() {
    clearTimeout(this.#typingIdle);
    if (this.#typingSentAt) {
      this.#send({ type: 'typing', typing: false });
      this.#typingSentAt = 0;
    }
  }

  #setTypist(userId, name) {
    const current = this.#typists.get(userId);
    if (current) clearTimeout(current.timer);
    if (name) {
      const timer = setTimeout(() => this.#setTypist(userId, null), TYPING_SHOWN_MS);
      this.#typists.set(userId, { name, timer });
    } else {
      this.#typists.delete(userId);
    }
    const names = [...this.#typists.values()].map((typist) => typist.name);
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    this.#el.typing.textContent = text;
  }

  #announce(text) {
    // A separate live region: the list itself would also read out history pages.
    this.#el.announcer.textContent = text;
  }

  #updateOlderButton() {
    this.#el.older.hidden = !this.#hasMore;
  }

  #nearBottom() {
    const { list } = this.#el;
    return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_EDGE_PX;
  }

  #scrollToBottom() {
    const { list } = this.#el;
    list.scrollTop = list.scrollHeight;
    this.#pinned = true;
  }

  #keepPinned() {
    if (this.#pinned) this.#el.list.scrollTop = this.#el.list.scrollHeight;
  }
}
