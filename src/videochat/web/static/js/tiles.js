// The video grid: our own tile and one tile per other person in the call. A tile
// whose camera is off shows an avatar instead of the (frozen or black) video. The
// person speaking gets a highlighted tile; while someone shares a screen the grid
// turns into a spotlight: the share large, everyone else in a strip.

import { fromTemplate, hueFor, initialOf } from './ui.js';

const STATUS_TEXT = {
  new: 'Connecting…',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  stalled: 'Still connecting…',
  failed: 'Connection failed',
};

export class VideoGrid {
  #grid;
  #local = null;
  #remote = new Map(); // user id → tile element
  #speaker = null; // user id of the highlighted tile
  #onFirstFrame;
  #onAutoplayBlocked;

  /**
   * @param {HTMLElement} grid
   * @param {object} hooks
   * @param {(userId: string) => void} hooks.onFirstFrame
   * @param {() => void} hooks.onAutoplayBlocked a remote video could not play with sound
   */
  constructor(grid, { onFirstFrame, onAutoplayBlocked }) {
    this.#grid = grid;
    this.#onFirstFrame = onFirstFrame;
    this.#onAutoplayBlocked = onAutoplayBlocked;
  }

  /** Our own tile; the preview is always muted (we do not want to hear ourselves). */
  setLocal({ name, userId, track, mirrored, state }) {
    if (!this.#local) {
      const tile = this.#makeTile(userId, `${name} (you)`, name);
      tile.classList.add('local');
      const video = tile.querySelector('video');
      video.muted = true;
      video.dataset.testid = 'local-video';
      this.#local = tile;
      this.#grid.prepend(tile);
      this.#layout();
    }
    const tile = this.#local;
    const video = tile.querySelector('video');
    const current = video.srcObject?.getVideoTracks()[0] ?? null;
    if (current !== track) video.srcObject = track ? new MediaStream([track]) : null;
    tile.classList.toggle('mirrored', Boolean(mirrored));
    this.#applyState(tile, state);
  }

  ensureRemote(userId, name) {
    let tile = this.#remote.get(userId);
    if (!tile) {
      tile = this.#makeTile(userId, name, name);
      const video = tile.querySelector('video');
      video.dataset.testid = 'remote-video';
      video.dataset.userId = userId;
      this.#watchFirstFrame(video, userId);
      this.#remote.set(userId, tile);
      this.#grid.append(tile);
      this.setStatus(userId, 'connecting');
      this.#layout();
    } else if (name) {
      tile.querySelector('.tile-name').textContent = name;
      tile.querySelector('.avatar').textContent = initialOf(name);
    }
    return tile;
  }

  setRemoteStream(userId, stream) {
    const tile = this.#remote.get(userId);
    if (!tile) return;
    const video = tile.querySelector('video');
    if (video.srcObject !== stream) video.srcObject = stream;
    this.#play(video);
  }

  setRemoteState(userId, state) {
    const tile = this.#remote.get(userId);
    if (tile) this.#applyState(tile, state);
  }

  setStatus(userId, status) {
    const tile = this.#remote.get(userId);
    if (!tile) return;
    tile.dataset.connection = status;
    tile.querySelector('.tile-status').textContent = STATUS_TEXT[status] ?? '';
  }

  /** Highlight the tile of the person speaking (null: nobody). */
  setSpeaker(userId) {
    this.#speaker = userId;
    for (const tile of this.#tiles()) {
      const speaking = tile.dataset.userId === userId;
      tile.classList.toggle('speaking', speaking);
      tile.dataset.speaking = String(speaking);
    }
  }

  removeRemote(userId) {
    const tile = this.#remote.get(userId);
    if (!tile) return;
    this.#remote.delete(userId);
    const video = tile.querySelector('video');
    video.srcObject = null;
    tile.remove();
    this.#layout();
  }

  /** Remove every remote tile whose person is not in `keep`. */
  retain(keep) {
    for (const userId of [...this.#remote.keys()]) {
      if (!keep.has(userId)) this.removeRemote(userId);
    }
  }

  /** After the browser blocked sound: a click lets every remote video play with sound. */
  unmuteAll() {
    for (const tile of this.#remote.values()) {
      const video = tile.querySelector('video');
      video.muted = false;
      video.play().catch(() => {});
    }
  }

  clear() {
    for (const userId of [...this.#remote.keys()]) this.removeRemote(userId);
    if (this.#local) {
      this.#local.querySelector('video').srcObject = null;
      this.#local.remove();
      this.#local = null;
    }
    this.#layout();
  }

  #tiles() {
    return [...(this.#local ? [this.#local] : []), ...this.#remote.values()];
  }

  #makeTile(userId, label, name) {
    const tile = fromTemplate('tpl-tile');
    tile.dataset.userId = userId;
    tile.dataset.speaking = String(userId === this.#speaker);
    tile.classList.toggle('speaking', userId === this.#speaker);
    tile.querySelector('.tile-name').textContent = label;
    const avatar = tile.querySelector('.avatar');
    avatar.textContent = initialOf(name);
    avatar.dataset.hue = String(Math.round(hueFor(userId) / 30) * 30);
    return tile;
  }

  #applyState(tile, state = {}) {
    // A shared screen is a picture too, even with the camera off.
    const showsVideo = Boolean(state.video || state.screen);
    tile.dataset.video = showsVideo ? 'on' : 'off';
    tile.dataset.audio = state.audio ? 'on' : 'off';
    const sharing = state.screen ? 'on' : 'off';
    if (tile.dataset.screen !== sharing) {
      tile.dataset.screen = sharing;
      this.#layout();
    }
  }

  #play(video) {
    video.play().catch((error) => {
      if (error.name !== 'NotAllowedError') return;
      // Autoplay with sound needs a user gesture (e.g. after a reload): play muted
      // now and offer a button that turns the sound on.
      video.muted = true;
      video.play().catch(() => {});
      this.#onAutoplayBlocked();
    });
  }

  #watchFirstFrame(video, userId) {
    if (video.requestVideoFrameCallback) {
      video.requestVideoFrameCallback(() => this.#onFirstFrame(userId));
    } else {
      video.addEventListener('loadeddata', () => this.#onFirstFrame(userId), { once: true });
    }
  }

  #layout() {
    // The CSS picks columns from the number of tiles.
    this.#grid.dataset.count = String(this.#remote.size + (this.#local ? 1 : 0));
    // A share by someone else comes first: our own is on our screen already.
    const sharing = [...this.#remote.values(), ...(this.#local ? [this.#local] : [])].find(
      (tile) => tile.dataset.screen === 'on',
    );
    for (const tile of this.#tiles()) {
      const spotlit = tile === sharing;
      tile.classList.toggle('spotlight', spotlit);
      tile.dataset.spotlight = String(spotlit);
    }
    this.#grid.dataset.layout = sharing ? 'spotlight' : 'grid';
  }
}
