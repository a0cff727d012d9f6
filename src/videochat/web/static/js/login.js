// Choosing a name (a guest account) or logging in / registering.

import { ApiError, api } from './api.js';
import { saveSession } from './session.js';
import { byId, setFormError, showView } from './ui.js';

// The server's rule for names, checked here first for a quicker, clearer message.
const NAME = /^[A-Za-z0-9_-]{2,50}$/;
const NAME_HINT = 'Use 2–50 letters, digits, “-” or “_” (no spaces).';

/** Show the sign-in view; `roomWaiting` says a deep link will open afterwards. */
export function showLogin({ roomWaiting = false, message = null } = {}) {
  byId('login-context').textContent = roomWaiting
    ? 'Choose a name to join the room.'
    : 'Pick a name to start, or use your account.';
  setFormError(byId('login-notice'), message);
  showView('login');
  byId('guest-name').focus();
}

async function busy(button, task) {
  button.disabled = true;
  try {
    return await task();
  } finally {
    button.disabled = false;
  }
}

/** Wire the two forms once; `onSignedIn` runs after a session was saved. */
export function setupLogin({ onSignedIn }) {
  const guestForm = byId('guest-form');
  const guestInput = byId('guest-name');
  const guestError = byId('guest-error');
  guestForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const username = guestInput.value.trim();
    if (!NAME.test(username)) {
      guestInput.setAttribute('aria-invalid', 'true');
      setFormError(guestError, NAME_HINT);
      guestInput.focus();
      return;
    }
    guestInput.removeAttribute('aria-invalid');
    setFormError(guestError, null);
    await busy(event.submitter ?? guestForm.querySelector('button'), async () => {
      try {
        const guest = await api.createGuest(username);
        saveSession({
          user: { id: guest.id, username: guest.username, is_guest: true },
          access_token: guest.access_token,
        });
      } catch (error) {
        setFormError(
          guestError,
          error instanceof ApiError && error.status === 409
            ? 'That name belongs to a registered account: log in, or pick another name.'
            : `Could not continue: ${error.message}`,
        );
        return;
      }
      guestInput.value = '';
      onSignedIn();
    });
  });

  const accountForm = byId('account-form');
  const nameInput = byId('account-name');
  const passwordInput = byId('account-password');
  const accountError = byId('account-error');
  accountForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const action = event.submitter?.value === 'register' ? 'register' : 'login';
    const username = nameInput.value.trim();
    const password = passwordInput.value;
    if (action === 'register' && !NAME.test(username)) {
      setFormError(accountError, NAME_HINT);
      nameInput.focus();
      return;
    }
    if (action === 'register' && password.length < 8) {
      setFormError(accountError, 'Choose a password of at least 8 characters.');
      passwordInput.focus();
      return;
    }
    if (!username || !password) {
      setFormError(accountError, 'Enter your username and password.');
      return;
    }
    setFormError(accountError, null);
    await busy(event.submitter ?? accountForm.querySelector('button'), async () => {
      try {
        const pair =
          action === 'register'
            ? await api.register(username, password)
            : await api.login(username, password);
        saveSession({
          user: pair.user,
          access_token: pair.access_token,
          refresh_token: pair.refresh_token,
        });
      } catch (error) {
        setFormError(accountError, error.message);
        return;
      }
      passwordInput.value = '';
      onSignedIn();
    });
  });
}
