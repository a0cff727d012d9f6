// The pre-join screen: a preview of the camera, the choice of camera and microphone,
// whether to join with each on, and the name we join as. Nothing asks for the camera
// or the microphone before this screen shows, and a refusal does not stop anyone from
// joining (to watch, listen and chat). Join hands the tracks over to the call.

import { LevelMeter } from './levelmeter.js';
import {
  deviceOf,
  devicePrefs,
  fillDeviceSelect,
  listDevices,
  saveDevicePrefs,
} from './devices.js';
import { describeMediaError, openCamera, openMicrophone, openUserMedia } from './media.js';
import { byId, hueFor, initialOf, showView } from './ui.js';

const KINDS = {
  video: { pref: 'camera', idPref: 'cameraId', name: 'camera', button: 'prejoin-camera' },
  audio: { pref: 'microphone', idPref: 'microphoneId', name: 'microphone', button: 'prejoin-mic' },
};

/** The pre-join screen saying "Joining…" while the room loads: nothing is asked for yet. */
export function showJoining() {
  byId('prejoin-title').textContent = 'Joining…';
  // Nothing to press until the room is known (the buttons do nothing before).
  for (const id of ['prejoin-join', 'prejoin-camera', 'prejoin-mic']) byId(id).disabled = true;
  byId('prejoin-status').textContent = '';
  byId('camera-select').replaceChildren();
  byId('mic-select').replaceChildren();
  showView('prejoin');
}

export class PreJoin {
  #roomName;
  #self;
  #prefs = devicePrefs();
  #tracks = { audio: null, video: null };
  // What went wrong with a kind that is wanted, for the status line and the call's notice.
  #problems = { audio: null, video: null };
  #meter = new LevelMeter(byId('mic-level'));
  #abort = new AbortController();
  #busy = Promise.resolve(); // device changes, one at a time
  #resolve = null;
  #done = false;

  /** @param {{roomName: string, self: {id: string, username: string}}} options */
  constructor({ roomName, self }) {
    this.#roomName = roomName;
    this.#self = self;
  }

  /**
   * Show the screen and start the preview. Resolves on Join with the tracks to call
   * with, or with null when the visit ends first.
   * @returns {Promise<{audio: MediaStreamTrack|null, video: MediaStreamTrack|null,
   *   message: string|null}|null>}
   */
  run() {
    byId('prejoin-title').textContent = `Join ${this.#roomName}`;
    byId('prejoin-name').textContent = this.#self.username;
    const avatar = byId('prejoin-avatar');
    avatar.textContent = initialOf(this.#self.username);
    avatar.dataset.hue = String(Math.round(hueFor(this.#self.id) / 30) * 30);
    this.#status('');
    this.#bind();
    this.#render();
    showView('prejoin');
    for (const id of ['prejoin-join', 'prejoin-camera', 'prejoin-mic']) byId(id).disabled = false;
    this.#busy = this.#openWanted();
    this.#refreshDevices();
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** The visit ended before Join: stop everything the preview opened. */
  cancel() {
    if (this.#done) return;
    for (const track of Object.values(this.#tracks)) track?.stop();
    this.#finish(null);
  }

  #bind() {
    const on = { signal: this.#abort.signal };
    byId('prejoin-camera').addEventListener('click', () => this.#toggle('video'), on);
    byId('prejoin-mic').addEventListener('click', () => this.#toggle('audio'), on);
    const choose = (kind) => (event) => this.#choose(kind, event.target.value);
    byId('camera-select').addEventListener('change', choose('video'), on);
    byId('mic-select').addEventListener('change', choose('audio'), on);
    byId('prejoin-form').addEventListener('submit', (event) => this.#join(event), on);
    byId('prejoin-form').addEventListener('pointerdown', () => this.#meter.resume(), on);
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.#refreshDevices(), on);
  }

  async #openWanted() {
    const media = await openUserMedia({
      camera: this.#prefs.camera,
      microphone: this.#prefs.microphone,
      cameraId: this.#prefs.cameraId,
      microphoneId: this.#prefs.microphoneId,
    });
    if (this.#done) {
      media.audio?.stop();
      media.video?.stop();
      return;
    }
    this.#setTrack('audio', media.audio);
    this.#setTrack('video', media.video);
    for (const kind of ['audio', 'video']) {
      const wanted = this.#prefs[KINDS[kind].pref];
      this.#problems[kind] = wanted && !this.#tracks[kind] ? media.problem : null;
    }
    this.#showProblems();
    // Labels (and ids) of devices are only given once something was allowed.
    if (media.audio || media.video) await this.#refreshDevices();
  }

  #toggle(kind) {
    const pref = KINDS[kind].pref;
    this.#prefs[pref] = !this.#prefs[pref];
    saveDevicePrefs({ [pref]: this.#prefs[pref] });
    this.#render();
    this.#busy = this.#busy.then(() => this.#reopen(kind));
  }

  #choose(kind, deviceId) {
    const { idPref } = KINDS[kind];
    this.#prefs[idPref] = deviceId || null;
    saveDevicePrefs({ [idPref]: this.#prefs[idPref] });
    this.#busy = this.#busy.then(() => this.#reopen(kind));
  }

  /** Make the preview match the choice for one kind: off, or on from the chosen device. */
  async #reopen(kind) {
    if (this.#done) return;
    const { pref, idPref, name } = KINDS[kind];
    const wanted = this.#prefs[pref];
    const current = this.#tracks[kind];
    if (!wanted) {
      this.#setTrack(kind, null);
      this.#problems[kind] = null;
      this.#showProblems();
      return;
    }
    if (current && (!this.#prefs[idPref] || deviceOf(current) === this.#prefs[idPref])) return;
    this.#setTrack(kind, null); // some devices cannot be opened twice at once
    try {
      const open = kind === 'video' ? openCamera : openMicrophone;
      const track = await open(this.#prefs[idPref]);
      if (this.#done) {
        track.stop();
        return;
      }
      this.#setTrack(kind, track);
      this.#problems[kind] = null;
      this.#refreshDevices();
    } catch (error) {
      const capital = name[0].toUpperCase() + name.slice(1);
      this.#problems[kind] = `${capital} unavailable (${describeMediaError(error)})`;
    }
    this.#showProblems();
  }

  #setTrack(kind, track) {
    const old = this.#tracks[kind];
    if (old && old !== track) old.stop();
    this.#tracks[kind] = track;
    if (kind === 'video') {
      const video = byId('prejoin-video');
      video.srcObject = track ? new MediaStream([track]) : null;
      byId('prejoin-preview').dataset.video = track ? 'on' : 'off';
    } else {
      this.#meter.attach(track);
    }
  }

  async #refreshDevices() {
    const { cameras, microphones } = await listDevices();
    if (this.#done) return;
    const cameraId = deviceOf(this.#tracks.video) ?? this.#prefs.cameraId;
    const microphoneId = deviceOf(this.#tracks.audio) ?? this.#prefs.microphoneId;
    fillDeviceSelect(byId('camera-select'), cameras, cameraId, 'No camera found');
    fillDeviceSelect(byId('mic-select'), microphones, microphoneId, 'No microphone found');
  }

  #render() {
    for (const { pref, name, button } of Object.values(KINDS)) {
      const on = this.#prefs[pref];
      const toggle = byId(button);
      toggle.setAttribute('aria-pressed', String(on));
      toggle.textContent = `${name[0].toUpperCase()}${name.slice(1)} ${on ? 'on' : 'off'}`;
    }
  }

  #showProblems() {
    // One capture for both kinds fails for both with one reason: say it once.
    const problems = [...new Set(Object.values(this.#problems).filter(Boolean))];
    this.#status(
      problems.length
        ? `${problems.join('. ')}. You can still join: you will see, hear and chat.`
        : '',
    );
  }

  #status(text) {
    const status = byId('prejoin-status');
    if (status.textContent !== text) status.textContent = text;
  }

  async #join(event) {
    event.preventDefault();
    if (this.#done) return;
    byId('prejoin-join').disabled = true;
    await this.#busy; // a device being opened joins with us
    if (this.#done) return;
    const missing = [
      ...new Set(
        Object.entries(this.#problems)
          .filter(([kind, problem]) => problem && !this.#tracks[kind])
          .map(([, problem]) => problem),
      ),
    ];
    const only = this.#tracks.audio && !this.#tracks.video
      ? 'you joined with your microphone only'
      : this.#tracks.video && !this.#tracks.audio
        ? 'you joined with your camera only'
        : 'you can still see, hear and chat';
    const message = missing.length ? `${missing.join('. ')}: ${only}.` : null;
    const media = { ...this.#tracks, message };
    // The tracks go to the call as they are: no second permission prompt, no flicker.
    this.#tracks = { audio: null, video: null };
    this.#finish(media);
  }

  #finish(result) {
    this.#done = true;
    this.#abort.abort();
    this.#meter.stop();
    byId('prejoin-video').srcObject = null;
    byId('prejoin-preview').dataset.video = 'off';
    this.#resolve?.(result);
  }
}
