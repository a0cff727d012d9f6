// The screens shown instead of a room: not found, banned, removed, left (with Rejoin),
// a bad invite. One view (data-view="error"); `data-reason` says which, for tests.

import { byId, showView } from './ui.js';

const SCREENS = {
  'not-found': {
    title: 'Room not found',
    text: 'There is no room at this address. Check the link, or ask for a new one.',
  },
  gone: {
    title: 'Room not found',
    text: 'This room no longer exists, or you can no longer see it.',
  },
  banned: {
    title: 'You are banned from this room',
    text: 'A moderator banned you from this room: you cannot join it again.',
  },
  kicked: {
    title: 'You were removed from this room',
    text: 'A moderator removed you from this room.',
  },
  left: { title: 'You left the room', text: 'You are no longer in the call or the chat.' },
  invite: {
    title: "This room can't be opened",
    text: 'This invite link is not valid (any more). Ask for a new one.',
  },
  full: { title: 'This room is full', text: 'Try again when someone has left.' },
  error: { title: "This room can't be opened", text: '' },
};

let rejoinTarget = null;

/**
 * Show one screen. `rejoin` (a function) adds a Rejoin button; `text` replaces the
 * screen's usual sentence; `name` is the room's name, when known.
 */
export function showRoomScreen(reason, { text, name, rejoin } = {}) {
  const screen = SCREENS[reason] ?? SCREENS.error;
  const view = document.querySelector('[data-view="error"]');
  view.dataset.reason = reason;
  byId('error-title').textContent =
    reason === 'left' && name ? `You left ${name}` : screen.title;
  byId('error-text').textContent = text ?? screen.text;
  rejoinTarget = rejoin ?? null;
  byId('rejoin').hidden = !rejoin;
  showView('error');
}

export function setupScreens() {
  byId('rejoin').addEventListener('click', () => rejoinTarget?.());
}
