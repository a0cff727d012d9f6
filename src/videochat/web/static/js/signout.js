// Signing out. An account signs out at once (its refresh token is revoked, it can log in
// again). A guest is warned first: a guest has no password, so signing out ends the
// guest for good (DELETE /users/me): their private rooms are out of reach and the
// rooms they own pass to the next in line (see rooms/succession.py).

import { ApiError, api } from './api.js';
import { clearSession, currentSession } from './session.js';
import { byId, nameTag, toast } from './ui.js';

/**
 * @param {object} options
 * @param {() => void} options.leave hang up and close the room, before the session goes
 * @param {() => void} options.done show what comes after (the sign-in)
 * @param {() => void} options.stay the guest could not be signed out: back to where we were
 */
export function setupSignOut({ leave, done, stay }) {
  const dialog = byId('sign-out-dialog');

  byId('sign-out').addEventListener('click', () => {
    const user = currentSession()?.user;
    if (!user) return done();
    if (!user.is_guest) return signOutAccount();
    byId('sign-out-name').textContent = `${user.username} ${nameTag(user.id)}`;
    dialog.returnValue = ''; // Escape keeps the last value: start from "not confirmed"
    dialog.showModal();
    return undefined;
  });

  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'confirm') endGuest();
    else byId('sign-out').focus();
  });

  function signOutAccount() {
    const refreshToken = currentSession()?.refresh_token;
    leave();
    clearSession();
    // Revoke the sign-in on the server too: a copy of the refresh token is useless after.
    if (refreshToken) api.logout(refreshToken).catch(() => {});
    done();
  }

  async function endGuest() {
    leave();
    try {
      await api.endGuest();
    } catch (error) {
      if (!(error instanceof ApiError)) {
        // Offline: signing out only here would leave the rooms with an owner nobody can be.
        toast('Could not reach the server: you are still signed in. Try again.', {
          kind: 'warn',
        });
        stay();
        return;
      }
      // A 4xx: the guest was gone already (or cannot be ended): forget it all the same.
    }
    clearSession();
    done();
  }
}
