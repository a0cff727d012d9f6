// The people in the room and what each of them has on: microphone, camera, screen.
// Fed by `presence` (the whole list) and `media_state` (one person's change). For the
// owner and moderators each row also has the moderation actions their role allows.

import { fromTemplate, renderName } from './ui.js';

const RANK = { member: 0, moderator: 1, owner: 2 };

const KINDS = [
  ['audio', 'microphone'],
  ['video', 'camera'],
  ['screen', 'screen share'],
];

export class ParticipantList {
  #list;
  #count;
  #selfId;
  #items = new Map(); // user id → <li>
  #callMembers = null; // null until the call knows who is in it
  #members = new Map(); // user id → {role, muted}, from GET /members
  #onAction = null; // (userId, action) => void, for the owner and moderators

  constructor(list, count, selfId) {
    this.#list = list;
    this.#count = count;
    this.#selfId = selfId;
  }

  render(participants) {
    const seen = new Set();
    for (const person of participants) {
      seen.add(person.user_id);
      let item = this.#items.get(person.user_id);
      if (!item) {
        item = fromTemplate('tpl-participant');
        item.dataset.userId = person.user_id;
        this.#items.set(person.user_id, item);
      }
      const suffix = person.user_id === this.#selfId ? ' (you)' : '';
      renderName(item.querySelector('.participant-name'), person.user_id, person.username, suffix);
      this.#applyMedia(item, person);
      this.#applyActions(item);
      // Keep the server's order (who joined first), which also decides who is on video.
      this.#list.append(item);
    }
    for (const [userId, item] of this.#items) {
      if (!seen.has(userId)) {
        item.remove();
        this.#items.delete(userId);
      }
    }
    this.#count.textContent = `(${this.#items.size})`;
    this.#applyCallMembers();
  }

  /** Who has which role (and who is muted); `onAction` runs a moderation action. */
  setMembers(members, onAction) {
    this.#members = new Map(members.map((m) => [m.user_id, { role: m.role, muted: m.muted }]));
    this.#onAction = onAction;
    for (const item of this.#items.values()) this.#applyActions(item);
  }

  /** Whether someone in the list has no known role yet (GET /members is older). */
  hasUnknown() {
    return [...this.#items.keys()].some((userId) => !this.#members.has(userId));
  }

  updateMedia(userId, state) {
    const item = this.#items.get(userId);
    if (item) this.#applyMedia(item, state);
  }

  /** Who is on video; the others are told they wait for a place in the call. */
  setCallMembers(memberIds) {
    this.#callMembers = memberIds;
    this.#applyCallMembers();
  }

  clear() {
    for (const item of this.#items.values()) item.remove();
    this.#items.clear();
    this.#count.textContent = '';
    this.#callMembers = null;
  }

  #applyCallMembers() {
    for (const [userId, item] of this.#items) {
      const waiting = this.#callMembers !== null && !this.#callMembers.has(userId);
      item.dataset.inCall = waiting ? 'false' : 'true';
      item.querySelector('.participant-note').textContent = waiting ? 'waiting (call full)' : '';
    }
  }

  /** The actions this viewer's role allows on this person (none on oneself or a peer). */
  #allowed(userId) {
    const mine = this.#members.get(this.#selfId)?.role ?? 'member';
    const theirs = this.#members.get(userId);
    if (userId === this.#selfId || !theirs || RANK[mine] < 1 || RANK[mine] <= RANK[theirs.role]) {
      return [];
    }
    const actions = [theirs.muted ? ['unmute', 'Unmute'] : ['mute', 'Mute']];
    actions.push(['kick', 'Remove'], ['ban', 'Ban']);
    if (mine === 'owner') {
      actions.push(
        theirs.role === 'moderator' ? ['demote', 'Remove moderator'] : ['promote', 'Make moderator'],
      );
    }
    return actions;
  }

  #applyActions(item) {
    const userId = item.dataset.userId;
    const theirs = this.#members.get(userId);
    item.dataset.role = theirs?.role ?? '';
    item.dataset.muted = String(Boolean(theirs?.muted));
    item.querySelector('.participant-actions')?.remove();
    const allowed = this.#allowed(userId);
    if (!allowed.length || !this.#onAction) return;
    const name = item.querySelector('.participant-name').textContent;
    const box = document.createElement('div');
    box.className = 'participant-actions';
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', `Moderate ${name}`);
    for (const [action, text] of allowed) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = `tool-button action-${action}`;
      button.dataset.testid = `participant-${action}`;
      button.textContent = text;
      button.setAttribute('aria-label', `${text}: ${name}`);
      button.addEventListener('click', () => this.#onAction(userId, action));
      box.append(button);
    }
    item.append(box);
  }

  #applyMedia(item, state) {
    for (const [kind, label] of KINDS) {
      const on = Boolean(state[kind]);
      item.dataset[kind] = String(on);
      const badge = item.querySelector(`.media-badge[data-kind="${kind}"]`);
      badge.classList.toggle('on', on);
      // The badge shows a short word; screen readers hear the whole state.
      badge.querySelector('.visually-hidden').textContent = `${label} ${on ? 'on' : 'off'}`;
    }
  }
}
