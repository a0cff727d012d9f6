// Entry point: routing between the sign-in view, the lobby and a room.
// Addresses: /chat (the lobby), /chat/rooms/{room_id}[?invite=code] (a room's call),
// /chat/rooms/{room_id}/videos[/{video_id}] (its video library, a video playing).

import { api, authEvents } from './api.js';
import { forgetJoined, rememberJoined } from './devices.js';
import { Lobby } from './lobby.js';
import { setupLogin, showLogin } from './login.js';
import { RoomSession, roomPath } from './room.js';
import { setupScreens, showRoomScreen } from './screens.js';
import { clearSession, currentSession, saveSession } from './session.js';
import { byId } from './ui.js';

// What tests and curious developers can look at from the console.
const registry = {
  /** user id → RTCPeerConnection, for everyone we are on video with */
  peers: new Map(),
  /** user id → {created, connected, firstFrame} in performance.now() milliseconds */
  timings: {},
  enteredAt: null,
  /** the last few hundred call events, oldest first */
  trace: [],
  get roomId() {
    return room?.roomId ?? null;
  },
  get user() {
    return currentSession()?.user ?? null;
  },
};
window.videochat = registry;

let room = null;
let routing = Promise.resolve();
const lobby = new Lobby((roomId) => navigate(roomPath(roomId)));

function parseRoute() {
  const match = location.pathname.match(/^\/chat\/rooms\/([^/]+)(?:\/(videos)(?:\/([^/]+))?)?\/?$/);
  if (match) {
    return {
      name: 'room',
      roomId: decodeURIComponent(match[1]),
      invite: new URLSearchParams(location.search).get('invite'),
      view: {
        tab: match[2] ? 'videos' : 'call',
        videoId: match[3] ? decodeURIComponent(match[3]) : null,
      },
    };
  }
  return { name: 'lobby' };
}

export function navigate(path) {
  if (path !== location.pathname + location.search) history.pushState(null, '', path);
  return route();
}

// Routes run one after another, so a quick Back during a room's start cannot interleave.
function route() {
  routing = routing.then(applyRoute).catch((error) => console.error('videochat: route', error));
  return routing;
}

/**
 * Hang up and tear the room down. `forget`: the person went elsewhere (not a reload),
 * so coming back to the room shows the pre-join screen again.
 */
function leaveRoom({ forget = true } = {}) {
  room?.leave();
  room = null;
  if (forget) forgetJoined();
}

async function applyRoute() {
  const target = parseRoute();
  const session = currentSession();
  renderWhoami(session);
  if (!session) {
    leaveRoom();
    showLogin({ roomWaiting: target.name === 'room' });
    return;
  }
  if (target.name === 'room') {
    if (room?.roomId === target.roomId) {
      room.showTab(target.view); // the call or the library: the room stays entered
      return;
    }
    // Another room (or this one again after Back): its own pre-join, unless Rejoin said so.
    if (room) leaveRoom();
    room = new RoomSession({
      roomId: target.roomId,
      invite: target.invite,
      self: session.user,
      registry,
      onExit: (name) => showLeft(target.roomId, name),
      view: target.view,
    });
    await room.enter();
    return;
  }
  leaveRoom();
  if (location.pathname !== '/chat') history.replaceState(null, '', '/chat');
  lobby.show();
}

/** Pressed Leave: hang up, and offer to come back (a reload goes to the room list). */
function showLeft(roomId, name) {
  routing = routing
    .then(() => {
      leaveRoom();
      history.pushState(null, '', '/chat');
      // Rejoin goes straight back into the call, with the same camera and microphone.
      const rejoin = () => {
        rememberJoined(roomId);
        navigate(roomPath(roomId));
      };
      showRoomScreen('left', { name, rejoin });
    })
    .catch((error) => console.error('videochat: leave', error));
}

function renderWhoami(session) {
  byId('whoami').hidden = !session;
  byId('whoami-name').textContent = session
    ? `${session.user.username}${session.user.is_guest ? ' (guest)' : ''}`
    : '';
}

/** A stored session may belong to a user the server no longer knows: check once. */
async function checkSession() {
  const session = currentSession();
  if (!session) return;
  try {
    const user = await api.me();
    // The token may have been rotated meanwhile: store the name on the newest session.
    const latest = currentSession();
    if (latest) saveSession({ ...latest, user: { ...latest.user, ...user } });
  } catch {
    // 401 already ended the session (authEvents); offline: carry on optimistically.
  }
}

function boot() {
  setupLogin({ onSignedIn: () => route() });
  setupScreens();
  byId('sign-out').addEventListener('click', () => {
    const refreshToken = currentSession()?.refresh_token;
    leaveRoom();
    clearSession();
    // Revoke the sign-in on the server too: a copy of the refresh token is useless after.
    if (refreshToken) api.logout(refreshToken).catch(() => {});
    navigate('/chat');
  });
  authEvents.addEventListener('expired', () => {
    leaveRoom();
    renderWhoami(null);
    showLogin({
      roomWaiting: parseRoute().name === 'room',
      message: 'Your session has ended: choose a name or log in again.',
    });
  });
  // In-app links change the address without reloading the page.
  document.addEventListener('click', (event) => {
    const link = event.target.closest?.('a[data-route]');
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(link.getAttribute('href'));
  });
  window.addEventListener('popstate', () => route());
  // Closing or reloading the tab: hang up now, so the others drop our tile at once.
  window.addEventListener('pagehide', () => leaveRoom({ forget: false }));
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) route(); // back from the bfcache: join again
  });
  routing = checkSession();
  route();
}

boot();
