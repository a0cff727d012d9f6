// The HTTP API, with bearer tokens attached and refresh-token rotation for accounts.

import { clearSession, currentSession, expiresWithin, saveSession } from './session.js';

// Refresh a little before expiry, so a socket handshake never carries a token
// that dies in flight.
const REFRESH_MARGIN_MS = 60_000;

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail) || `The server answered ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/** FastAPI's `detail`: a sentence, or a list of validation errors. */
function describeDetail(detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => (typeof item?.msg === 'string' ? item.msg.replace(/^Value error, /, '') : ''))
      .filter(Boolean)
      .join('; ');
  }
  return '';
}

/** Fired with type "expired" when the session can no longer be used. */
export const authEvents = new EventTarget();

function expire() {
  clearSession();
  authEvents.dispatchEvent(new Event('expired'));
}

let refreshing = null;

/**
 * A usable access token: the stored one, or a freshly rotated one when it is about
 * to expire (or when `rejected` — a token the server just refused — is still stored).
 */
export async function accessToken(rejected = null) {
  const session = currentSession();
  if (!session) return null;
  const stale = rejected
    ? session.access_token === rejected
    : expiresWithin(session.access_token, REFRESH_MARGIN_MS);
  if (!stale) return session.access_token;
  if (!session.refresh_token) {
    // A guest cannot refresh; its token lives for days. A refused one is the end.
    if (rejected) expire();
    return rejected ? null : session.access_token;
  }
  // One refresh at a time in this page; several callers share its result.
  refreshing ??= withRefreshLock(() => rotate(session.access_token)).finally(() => {
    refreshing = null;
  });
  const fresh = await refreshing;
  return fresh?.access_token ?? null;
}

// Each refresh token works once, so two tabs must not spend the same one: the
// Web Locks API serialises them across tabs (where the browser has it).
function withRefreshLock(task) {
  if (navigator.locks?.request) return navigator.locks.request('videochat-token-refresh', task);
  return task();
}

async function rotate(staleAccessToken) {
  const session = currentSession();
  if (!session?.refresh_token) return null;
  // Another tab may have rotated while we waited for the lock: use its tokens.
  const rotatedElsewhere = session.access_token !== staleAccessToken;
  if (rotatedElsewhere && !expiresWithin(session.access_token, REFRESH_MARGIN_MS)) {
    return session;
  }
  let response;
  try {
    response = await fetch('/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ refresh_token: session.refresh_token }),
    });
  } catch {
    return session; // offline: keep what we have and try again later
  }
  if (!response.ok) {
    expire();
    return null;
  }
  const pair = await response.json();
  const fresh = {
    user: pair.user,
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
  };
  saveSession(fresh);
  return fresh;
}

async function send(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function readDetail(response) {
  try {
    return (await response.json()).detail;
  } catch {
    return response.statusText;
  }
}

export async function request(method, path, { body, auth = true } = {}) {
  let token = auth ? await accessToken() : null;
  let response = await send(method, path, body, token);
  if (response.status === 401 && token) {
    token = await accessToken(token);
    if (token) response = await send(method, path, body, token);
  }
  if (!response.ok) throw new ApiError(response.status, await readDetail(response));
  return response.status === 204 ? null : response.json();
}

const room = (id) => `/rooms/${encodeURIComponent(id)}`;

/**
 * A list asked for again and again (at each frame, action or Refresh): its answers may
 * arrive out of order, and an older one must not undo what a newer one showed.
 * `ask()` before the request; `isNewest(ticket)` once its answer is in.
 */
export class NewestAnswer {
  #asked = 0;

  ask() {
    this.#asked += 1;
    return this.#asked;
  }

  isNewest(ticket) {
    return ticket === this.#asked;
  }
}

export const api = {
  createGuest: (username) => request('POST', '/users', { body: { username }, auth: false }),
  register: (username, password) =>
    request('POST', '/auth/register', { body: { username, password }, auth: false }),
  login: (username, password) =>
    request('POST', '/auth/login', { body: { username, password }, auth: false }),
  me: () => request('GET', '/auth/me'),
  /** Revoke the refresh token's family (sign-out); best effort, the caller forgets it anyway. */
  logout: (refreshToken) =>
    request('POST', '/auth/logout', { body: { refresh_token: refreshToken }, auth: false }),
  /** End this guest for good: their rooms pass to the next in line (a guest's sign-out). */
  endGuest: () => request('DELETE', '/users/me'),
  /** A one-time ticket for the room socket (`?ticket=`), so no token goes in its URL. */
  socketTicket: () => request('POST', '/auth/socket-ticket'),
  rooms: () => request('GET', '/rooms'),
  createRoom: (name, isPrivate) =>
    request('POST', '/rooms', { body: { name, is_private: isPrivate } }),
  room: (id) => request('GET', room(id)),
  members: (id) => request('GET', `${room(id)}/members`),
  joinRoom: (id, inviteCode) =>
    request('POST', `${room(id)}/join`, { body: inviteCode ? { invite_code: inviteCode } : {} }),
  knock: (id) => request('POST', `${room(id)}/lobby`),
  myKnock: (id) => request('GET', `${room(id)}/lobby/me`),
  withdrawKnock: (id) => request('DELETE', `${room(id)}/lobby/me`),
  lobby: (id) => request('GET', `${room(id)}/lobby`),
  admit: (id, userId) =>
    request('POST', `${room(id)}/lobby/${encodeURIComponent(userId)}/admit`),
  deny: (id, userId) => request('POST', `${room(id)}/lobby/${encodeURIComponent(userId)}/deny`),
  /** A moderation action on a member: mute, unmute, kick or ban. */
  moderate: (id, userId, action) =>
    request('POST', `${room(id)}/members/${encodeURIComponent(userId)}/${action}`),
  setRole: (id, userId, role) =>
    request('POST', `${room(id)}/members/${encodeURIComponent(userId)}/role`, { body: { role } }),
  messages: (id, { limit = 50, before } = {}) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set('before', String(before));
    return request('GET', `${room(id)}/messages?${query}`);
  },
  /** Admission to the room's call on the SFU: a Janus URL, room, token and publisher id. */
  sfuGrant: (id) => request('POST', `${room(id)}/call/sfu-grant`),
  /** Bind our grant to the Janus handle we publish from (before joining with it). */
  sfuHandle: (id, sessionId, handleId) =>
    request('POST', `${room(id)}/call/sfu-handle`, {
      body: { session_id: sessionId, handle_id: handleId },
    }),
  /** Whose each feed in the call's VideoRoom is, as the server checked it at Janus. */
  sfuFeeds: (id) => request('GET', `${room(id)}/call/sfu-feeds`),
  /** Start or stop recording the call on the SFU (owner or moderator). */
  startRecording: (id) => request('POST', `${room(id)}/call/recording`),
  stopRecording: (id) => request('DELETE', `${room(id)}/call/recording`),
  /** STUN/TURN servers for calls; null when this server has none to offer (404). */
  iceServers: async () => {
    try {
      return await request('GET', '/rtc/ice-servers');
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  },
};
