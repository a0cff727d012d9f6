// Who we are: the user and their tokens, kept in localStorage so a reload (or a
// second tab) stays signed in. Guests only have an access token; accounts also
// have a refresh token that rotates on every use.

const KEY = 'videochat.session.v1';

export function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(KEY) ?? 'null');
    return session?.user?.id && session.access_token ? session : null;
  } catch {
    // Storage disabled (private mode) or a corrupt value: behave as signed out.
    return null;
  }
}

export function saveSession(session) {
  try {
    localStorage.setItem(KEY, JSON.stringify(session));
  } catch {
    // Without storage the session lasts as long as this page; nothing else to do.
  }
  memory = session;
}

export function clearSession() {
  try {
    localStorage.removeItem(KEY);
  } catch {
    // see saveSession
  }
  memory = null;
}

// Fallback for browsers that refuse storage: the session of this page only.
let memory = null;

export function currentSession() {
  return loadSession() ?? memory;
}

/** When a JWT expires, in epoch milliseconds (null when unreadable). */
export function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(payload));
    return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

export function expiresWithin(token, ms) {
  const expiry = tokenExpiry(token);
  return expiry !== null && expiry - Date.now() < ms;
}
