// The lobby of a private room: the knocker's waiting screen, and the list of people
// waiting that the owner and moderators see beside the call. Names only ever go
// through textContent.

import { ApiError, api } from './api.js';
import { byId, displayName, renderName, showView, toast } from './ui.js';

const POLL_MS = 2000;

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * Show the waiting screen for a private room we are not a member of. The person
 * presses "Ask to join"; we knock and poll our knock's status until a moderator
 * decides. Resolves true when admitted; 'not-found' for an unknown room, 'banned' when
 * banned; false when denied, withdrawn or left.
 */
export async function waitForAdmission(roomId, signal) {
  const status = byId('knock-status');
  const ask = byId('knock-ask');
  const cancel = byId('knock-cancel');
  const say = (text) => {
    status.textContent = text;
  };
  say('This room is private. You can ask its moderators to let you in.');
  ask.hidden = false;
  ask.disabled = false;
  cancel.hidden = true;
  showView('knock');

  const pressed = (button) =>
    new Promise((resolve) => {
      button.addEventListener('click', () => resolve(true), { once: true, signal });
      signal.addEventListener('abort', () => resolve(false), { once: true });
    });

  for (;;) {
    if (!(await pressed(ask)) || signal.aborted) return false;
    ask.disabled = true;
    try {
      const knock = await api.knock(roomId);
      if (knock.status === 'admitted') return true;
    } catch (error) {
      ask.disabled = false;
      if (error instanceof ApiError && error.status === 404) return 'not-found';
      if (error instanceof ApiError && error.status === 403) return 'banned';
      say(error.message); // banned, lobby full, too many knocks: the server says which
      continue;
    }
    ask.hidden = true;
    cancel.hidden = false;
    say('Waiting for a moderator to let you in…');
    let withdrawn = false;
    cancel.addEventListener(
      'click',
      () => {
        withdrawn = true;
        api.withdrawKnock(roomId).catch(() => {});
      },
      { once: true, signal },
    );
    while (!signal.aborted && !withdrawn) {
      await sleep(POLL_MS, signal);
      if (signal.aborted || withdrawn) break;
      let knock;
      try {
        knock = await api.myKnock(roomId);
      } catch {
        continue; // offline for a moment: keep waiting
      }
      if (knock.status === 'admitted') return true;
      if (knock.status === 'denied') {
        cancel.hidden = true;
        say('A moderator did not let you in to this room.');
        return false;
      }
      if (knock.status === 'expired') break;
    }
    if (signal.aborted) return false;
    cancel.hidden = true;
    ask.hidden = false;
    ask.disabled = false;
    say(withdrawn ? 'You stopped waiting.' : 'Nobody answered in time. You can ask again.');
  }
}

/** The owner's and moderators' list of people waiting, with Admit and Deny. */
export class LobbyPanel {
  #roomId;
  #people = new Map();
  #enabled = false;
  // Lobby frames heard while the list is being fetched: its answer may predate them
  // (a knock would be lost, an admitted person listed again), so they go on top of it.
  #heardWhileFetching = null;

  constructor(roomId) {
    this.#roomId = roomId;
  }

  async enable() {
    this.#enabled = true;
    const heard = [];
    this.#heardWhileFetching = heard;
    let waiting = [];
    try {
      waiting = await api.lobby(this.#roomId);
    } catch {
      // Not listed now: what the frames say is all there is.
    }
    if (this.#heardWhileFetching !== heard) return; // disabled or enabled again since
    this.#heardWhileFetching = null;
    this.#people = new Map(waiting.map((knock) => [knock.user_id, knock.username]));
    for (const frame of heard) this.#apply(frame);
    this.#render();
  }

  disable() {
    this.#enabled = false;
    this.#heardWhileFetching = null;
    this.#people.clear();
    this.#render();
  }

  /** A `lobby` frame from the socket. */
  onFrame(frame) {
    if (!this.#enabled) return;
    this.#heardWhileFetching?.push(frame);
    this.#apply(frame);
    if (frame.action === 'knock') {
      toast(`${displayName(frame.user_id, frame.username)} is asking to join.`);
    }
    this.#render();
  }

  #apply(frame) {
    if (frame.action === 'knock') this.#people.set(frame.user_id, frame.username);
    else this.#people.delete(frame.user_id);
  }

  async #decide(userId, admit) {
    try {
      await (admit ? api.admit(this.#roomId, userId) : api.deny(this.#roomId, userId));
      this.#people.delete(userId);
    } catch (error) {
      toast(error.message, { kind: 'warn' });
      if (error instanceof ApiError && error.status === 404) this.#people.delete(userId);
    }
    this.#render();
  }

  #render() {
    const panel = byId('lobby-panel');
    const list = byId('lobby-list');
    panel.hidden = !this.#enabled || this.#people.size === 0;
    byId('lobby-count').textContent = String(this.#people.size);
    list.replaceChildren();
    for (const [userId, username] of this.#people) {
      const item = document.createElement('li');
      item.className = 'lobby-person';
      item.dataset.testid = 'lobby-person';
      const name = document.createElement('span');
      name.className = 'lobby-name';
      renderName(name, userId, username);
      const admit = document.createElement('button');
      admit.type = 'button';
      admit.className = 'button primary';
      admit.textContent = 'Admit';
      admit.addEventListener('click', () => this.#decide(userId, true));
      const deny = document.createElement('button');
      deny.type = 'button';
      deny.className = 'button subtle';
      deny.textContent = 'Deny';
      deny.addEventListener('click', () => this.#decide(userId, false));
      item.append(name, admit, deny);
      list.append(item);
    }
  }
}
