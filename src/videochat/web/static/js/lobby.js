// The room list and the form that creates a room.

import { NewestAnswer, api } from './api.js';
import { byId, fromTemplate, setFormError, showView, toast } from './ui.js';

export class Lobby {
  #openRoom;
  #listings = new NewestAnswer(); // each visit and each Refresh asks

  /** @param {(roomId: string) => void} openRoom */
  constructor(openRoom) {
    this.#openRoom = openRoom;
    byId('create-room-form').addEventListener('submit', (event) => this.#create(event));
    byId('refresh-rooms').addEventListener('click', () => this.refresh());
  }

  show() {
    document.title = 'videochat';
    showView('lobby');
    this.refresh();
  }

  async refresh() {
    const asked = this.#listings.ask();
    const list = byId('room-list');
    list.setAttribute('aria-busy', 'true');
    try {
      const rooms = await api.rooms();
      if (!this.#listings.isNewest(asked)) return; // a newer list is on its way
      list.replaceChildren(
        ...rooms.map((room) => {
          const item = fromTemplate('tpl-room');
          const link = item.querySelector('.room-link');
          link.href = `/chat/rooms/${encodeURIComponent(room.id)}`;
          link.textContent = room.name;
          link.dataset.roomId = room.id;
          item.querySelector('.badge').hidden = !room.is_private;
          return item;
        }),
      );
      byId('room-list-empty').hidden = rooms.length > 0;
    } catch (error) {
      toast(`Could not load the rooms: ${error.message}`, { kind: 'warn' });
    } finally {
      if (this.#listings.isNewest(asked)) list.setAttribute('aria-busy', 'false');
    }
  }

  async #create(event) {
    event.preventDefault();
    const input = byId('room-name');
    const error = byId('create-room-error');
    const name = input.value.trim();
    if (name.length < 2 || name.length > 100) {
      input.setAttribute('aria-invalid', 'true');
      setFormError(error, 'A room name has 2 to 100 characters.');
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    setFormError(error, null);
    const button = event.submitter ?? event.target.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const room = await api.createRoom(name, byId('room-private').checked);
      input.value = '';
      byId('room-private').checked = false;
      this.#openRoom(room.id);
    } catch (failure) {
      setFormError(error, `Could not create the room: ${failure.message}`);
    } finally {
      button.disabled = false;
    }
  }
}
