// The people in the room and what each of them has on: microphone, camera, screen.
// Fed by `presence` (the whole list) and `media_state` (one person's change).

import { fromTemplate } from './ui.js';

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
      const name = person.user_id === this.#selfId ? `${person.username} (you)` : person.username;
      item.querySelector('.participant-name').textContent = name;
      this.#applyMedia(item, person);
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
