// The call's recording, as everyone in the room sees it: a "Recording" sign in the
// room header while it runs (from `recording` frames and the `welcome` of a socket
// that connects meanwhile), and for the owner and moderators on the SFU a button
// that starts and stops it. The server decides who may; the button only saves a 403.

import { api } from './api.js';
import { toast } from './ui.js';

export class RecordingControl {
  #roomId;
  #indicator;
  #button;
  #announcer;
  #active = false;
  #allowed = false;
  #onSfu = false;
  #busy = false;
  #abort = new AbortController();

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {HTMLElement} options.indicator the header's "Recording" sign
   * @param {HTMLButtonElement} options.button Record / Stop recording
   * @param {HTMLElement} options.announcer a polite live region
   */
  constructor({ roomId, indicator, button, announcer }) {
    this.#roomId = roomId;
    this.#indicator = indicator;
    this.#button = button;
    this.#announcer = announcer;
    button.addEventListener('click', () => this.#toggle(), { signal: this.#abort.signal });
    this.#render();
  }

  /** A `recording` frame, or welcome's `recording` (null: nothing is being recorded). */
  apply(frame) {
    const active = Boolean(frame?.active);
    const changed = active !== this.#active;
    this.#active = active;
    this.#render();
    if (!changed) return;
    this.#announcer.textContent = active ? 'Recording started' : 'Recording stopped';
    // Only a stop that made a video says where to find it (not a welcome after a gap).
    if (!active && frame?.video_id) {
      toast('Recording stopped: the video will appear in the Videos tab.');
    }
  }

  /** Whether we are the room's owner or a moderator. */
  setAllowed(allowed) {
    this.#allowed = Boolean(allowed);
    this.#render();
  }

  /** The call's mode from presence: only a call on the SFU can be recorded. */
  setCallMode(mode) {
    if (mode !== 'mesh' && mode !== 'sfu') return; // absent: unchanged
    this.#onSfu = mode === 'sfu';
    this.#render();
  }

  destroy() {
    this.#abort.abort();
    this.#active = false;
    this.#allowed = false;
    this.#onSfu = false;
    this.#announcer.textContent = '';
    this.#render();
  }

  async #toggle() {
    if (this.#busy) return;
    this.#busy = true;
    this.#render();
    try {
      // The frame that follows (to everyone, us included) changes the sign.
      if (this.#active) await api.stopRecording(this.#roomId);
      else await api.startRecording(this.#roomId);
    } catch (error) {
      toast(error.message, { kind: 'warn' });
    } finally {
      this.#busy = false;
      this.#render();
    }
  }

  #render() {
    this.#indicator.hidden = !this.#active;
    const button = this.#button;
    // A recording still running when the call left the SFU can still be stopped.
    button.hidden = !(this.#allowed && (this.#onSfu || this.#active));
    button.disabled = this.#busy;
    button.setAttribute('aria-pressed', String(this.#active));
    button.querySelector('.long').textContent = this.#active ? 'Stop recording' : 'Record';
    button.querySelector('.short').textContent = this.#active ? 'Stop rec' : 'Rec';
  }
}
