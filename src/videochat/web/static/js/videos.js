// The room's video library, a view of its own in the room (the "Videos" tab, at
// /chat/rooms/{id}/videos): upload a recording (with a progress bar), a grid of the
// room's videos with thumbnails whose status follows the `video_status` frames, a
// large player (native HLS) at /chat/rooms/{id}/videos/{video_id}, rename and delete
// for the uploader and the moderators above them (`video_deleted` frames drop a video
// everywhere), failed uploads shown with their reason and a Remove button.
//
// Mounted by room.js: mountVideos({roomId, self, root, mayManage}) ->
// {onFrame, open, destroy}.

import { NewestAnswer, accessToken, request } from './api.js';
import { element, toast } from './ui.js';

const HLS_TYPE = 'application/vnd.apple.mpegurl';
const STATUS_TEXT = {
  pending: 'uploading…',
  uploaded: 'queued',
  processing: 'processing…',
  ready: 'ready',
  failed: 'failed',
};

const STATUS_ORDER = ['pending', 'uploaded', 'processing', 'ready', 'failed'];

const roomPath = (roomId) => `/rooms/${encodeURIComponent(roomId)}`;
const videoPath = (videoId) => `/videos/${encodeURIComponent(videoId)}`;
/** The web client's own addresses of the library and of one video in it. */
export const libraryPath = (roomId, videoId) =>
  `/chat/rooms/${encodeURIComponent(roomId)}/videos` +
  (videoId ? `/${encodeURIComponent(videoId)}` : '');

function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds <= 0) return '';
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, '0');
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${secs}` : `${minutes}:${secs}`;
}

/** PUT the file's raw bytes to the upload slot, reporting progress (0..1). */
function putFile(url, file, token, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve();
        return;
      }
      let detail = xhr.statusText || `the server answered ${xhr.status}`;
      try {
        const body = JSON.parse(xhr.responseText);
        if (typeof body.detail === 'string') detail = body.detail;
      } catch {
        // not JSON: keep the status text
      }
      reject(new Error(detail));
    };
    xhr.onerror = () => reject(new Error('the connection was lost'));
    xhr.onabort = () => reject(new Error('the upload was cancelled'));
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

const TUS_CHUNK = 8 * 1024 * 1024;
const TUS_RETRIES = 6;

/** One tus request; resolves with the XHR, rejects on a network error. */
function tusRequest(method, url, token, headers, body, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader('Tus-Resumable', '1.0.0');
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    if (onProgress) {
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
    }
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Error('the connection was lost'));
    xhr.onabort = () => reject(new Error('the upload was cancelled'));
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body ?? null);
  });
}

function failure(xhr) {
  try {
    const body = JSON.parse(xhr.responseText);
    if (typeof body.detail === 'string') return new Error(body.detail);
  } catch {
    // not JSON
  }
  return new Error(xhr.statusText || `the server answered ${xhr.status}`);
}

/**
 * Resumable upload (tus 1.0) in chunks: when the connection drops or the server
 * hiccups, ask it how far it got (HEAD) and go on from there, with back-off.
 */
async function tusUpload(url, file, token, onProgress, signal) {
  let offset = 0;
  let failures = 0;
  while (offset < file.size || file.size === 0) {
    const chunk = file.slice(offset, offset + TUS_CHUNK);
    const headers = {
      'Content-Type': 'application/offset+octet-stream',
      'Upload-Offset': String(offset),
      // The slot was created with a deferred length: say it with every chunk.
      'Upload-Length': String(file.size),
    };
    try {
      const base = offset;
      const xhr = await tusRequest('PATCH', url, token, headers, chunk,
        (loaded) => onProgress((base + loaded) / file.size), signal);
      if (xhr.status === 204) {
        offset = Number(xhr.getResponseHeader('Upload-Offset') ?? offset + chunk.size);
        failures = 0;
        onProgress(offset / file.size);
        if (file.size === 0) return;
        continue;
      }
      if (xhr.status === 409) {
        // Our idea of the offset is stale (a chunk landed before the connection
        // dropped): ask, and go on from the server's offset.
        const head = await tusRequest('HEAD', url, token, {}, null, null, signal);
        const known = Number(head.getResponseHeader('Upload-Offset'));
        if (head.status !== 200 || Number.isNaN(known) || known === offset) throw failure(xhr);
        offset = known;
        continue;
      }
      if (xhr.status < 500 && xhr.status !== 423) throw failure(xhr);
    } catch (error) {
      if (signal.aborted || !/connection was lost/.test(error.message)) throw error;
    }
    failures += 1;
    if (failures > TUS_RETRIES) throw new Error('the upload kept failing; try again later');
    await new Promise((resume) => setTimeout(resume, Math.min(8000, 500 * 2 ** failures)));
    const head = await tusRequest('HEAD', url, token, {}, null, null, signal).catch(() => null);
    if (head?.status === 200) offset = Number(head.getResponseHeader('Upload-Offset') ?? offset);
  }
}

class VideoLibrary {
  #roomId;
  #self;
  #mayManage;
  #root;
  #form;
  #title;
  #file;
  #submit;
  #progress;
  #progressLabel;
  #count;
  #grid;
  #empty;
  #player;
  #videos = new Map(); // id -> video (as the API or the last frame described it)
  #uploading = new Map(); // id -> percent, for the uploads this page is sending
  #deleted = new Set(); // ids removed here: no late answer or frame brings them back
  #listings = new NewestAnswer();
  #lastUpload = null; // the id the form's progress line is about
  #editing = null; // the id whose title is being edited
  #confirming = null; // the id whose Delete asks "for everyone?"
  #playing = null;
  #abort = new AbortController();

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {{id: string}} options.self
   * @param {HTMLElement} options.root the (empty) element the library fills
   * @param {(uploaderId: string|null) => boolean} options.mayManage whether we may rename
   *   and delete a video of this uploader (the server decides anyway)
   */
  constructor({ roomId, self, root, mayManage }) {
    this.#roomId = roomId;
    this.#self = self;
    this.#mayManage = mayManage ?? ((uploaderId) => uploaderId === self.id);
    this.#root = root;
    const signal = this.#abort.signal;

    const head = element('div', { className: 'library-head' });
    this.#count = element('span', { className: 'count' });
    const heading = element('h2', { id: 'videos-title', text: 'Videos ' });
    heading.append(this.#count);
    head.append(heading, this.#buildForm());

    this.#player = element('section', {
      className: 'library-player',
      'aria-label': 'Player',
      testid: 'library-player',
    });
    this.#player.hidden = true;
    this.#grid = element('ul', {
      className: 'library-grid',
      'aria-label': 'Videos in this room',
      testid: 'library-grid',
    });
    this.#empty = element('p', {
      className: 'help library-empty',
      text: 'No videos yet. Upload a recording, or go live: broadcasts are kept here.',
    });
    root.replaceChildren(head, this.#player, this.#grid, this.#empty);
    root.dataset.testid = 'videos-panel';
    root.setAttribute('aria-labelledby', 'videos-title');
    this.#grid.addEventListener('keydown', (event) => this.#onKey(event), { signal });
    this.refresh();
  }

  #buildForm() {
    const signal = this.#abort.signal;
    this.#form = element('form', { className: 'videos-form', novalidate: '' });
    this.#title = element('input', {
      id: 'video-title',
      type: 'text',
      maxlength: '200',
      required: '',
      testid: 'video-title',
      placeholder: 'Title',
    });
    this.#file = element('input', {
      id: 'video-file',
      type: 'file',
      accept: 'video/*',
      required: '',
      testid: 'video-file',
    });
    this.#submit = element('button', {
      className: 'button primary',
      type: 'submit',
      text: 'Upload',
      testid: 'video-upload',
    });
    this.#progressLabel = element('span', {
      id: 'video-progress-label',
      className: 'help video-progress-label',
      'aria-live': 'polite',
      testid: 'video-progress-label',
    });
    this.#progress = element('progress', {
      className: 'video-progress',
      max: '100',
      value: '0',
      testid: 'video-progress',
      'aria-labelledby': 'video-progress-label',
    });
    this.#progress.hidden = true;
    const fields = element('div', { className: 'videos-form-fields' });
    fields.append(
      element('label', { for: 'video-title', text: 'Title' }),
      this.#title,
      element('label', { for: 'video-file', text: 'Video file' }),
      this.#file,
      this.#submit,
    );
    this.#form.append(fields, this.#progress, this.#progressLabel);
    this.#form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.upload();
    }, { signal });
    // Suggest the file's name as the title when none was typed.
    this.#file.addEventListener('change', () => {
      const file = this.#file.files?.[0];
      if (file && !this.#title.value.trim()) this.#title.value = file.name.replace(/\.[^.]+$/, '');
    }, { signal });
    return this.#form;
  }

  #setProgress(fraction, text) {
    const percent = Math.round(fraction * 100);
    this.#progress.value = percent;
    this.#progress.setAttribute('aria-valuenow', String(percent));
    this.#progress.setAttribute('aria-valuetext', `${percent}%`);
    this.#progressLabel.textContent = text ?? `Uploading: ${percent}%`;
  }

  async upload() {
    const file = this.#file.files?.[0];
    const title = this.#title.value.trim();
    if (!file || !title) {
      toast('Choose a video file and give it a title.', { kind: 'warn' });
      (file ? this.#title : this.#file).focus();
      return;
    }
    this.#submit.disabled = true;
    this.#progress.hidden = false;
    this.#progressLabel.classList.remove('is-error');
    this.#setProgress(0);
    let slot = null;
    try {
      slot = await request('POST', `${roomPath(this.#roomId)}/video-upload`, {
        body: { title, description: '', size_bytes: file.size || undefined },
      });
      this.#uploading.set(slot.id, 0);
      this.#upsert({ ...slot, room_id: this.#roomId, uploader_id: this.#self.id });
      const token = await accessToken();
      const onProgress = (fraction) => {
        this.#setProgress(fraction);
        this.#uploading.set(slot.id, Math.round(fraction * 100));
        this.#renderOne(slot.id);
      };
      if (slot.tus_url) {
        await tusUpload(slot.tus_url, file, token, onProgress, this.#abort.signal);
      } else {
        // Providers without tus (Bunny Stream): one streamed PUT.
        await putFile(slot.upload_url, file, token, onProgress, this.#abort.signal);
      }
      this.#uploading.delete(slot.id);
      this.#lastUpload = slot.id;
      this.#progress.hidden = true;
      this.#setProgress(1, `Uploaded “${title}”: it is being processed.`);
      this.#form.reset();
      this.#renderOne(slot.id);
      this.refresh();
    } catch (error) {
      if (this.#abort.signal.aborted) return;
      this.#setProgress(0, `Upload failed: ${error.message}`);
      this.#progressLabel.classList.add('is-error');
      if (slot) await this.#dropFailedSlot(slot.id, error.message);
    } finally {
      this.#submit.disabled = false;
    }
  }

  /** A slot whose bytes never arrived: delete it, so no ghost "uploading" entry stays. */
  async #dropFailedSlot(videoId, reason) {
    this.#uploading.delete(videoId);
    try {
      await request('DELETE', videoPath(videoId));
      this.#remove(videoId);
    } catch {
      // Could not delete it now (offline): show it as failed, with Remove.
      const known = this.#videos.get(videoId);
      if (known) this.#upsert({ ...known, status: 'failed', error: reason, localOnly: true });
    }
  }

  async refresh() {
    const asked = this.#listings.ask();
    let videos;
    try {
      videos = await request('GET', `${roomPath(this.#roomId)}/videos?limit=200`);
    } catch {
      return; // a transient failure: the next frame or upload refreshes again
    }
    // Answers may arrive out of order: only the newest listing asked for is shown.
    if (this.#abort.signal.aborted || !this.#listings.isNewest(asked)) return;
    const items = Array.isArray(videos) ? videos : (videos?.items ?? []);
    // A frame may have overtaken this answer: never step a known video back.
    const rank = (video) => STATUS_ORDER.indexOf(video?.status);
    // A listing answered before a deletion may arrive after its video_deleted frame:
    // a deleted video never comes back (ids are never reused).
    const listed = items.filter((video) => !this.#deleted.has(video.id));
    const fresh = new Map(
      listed.map((video) => {
        const known = this.#videos.get(video.id);
        const newer = known && rank(known) > rank(video);
        return [video.id, newer ? { ...video, status: known.status, error: known.error } : video];
      }),
    );
    // Keep what this page shows that the server no longer lists only when it is ours
    // and failed here (a slot we could not delete).
    for (const [id, video] of this.#videos) {
      if (!fresh.has(id) && video.localOnly) fresh.set(id, video);
    }
    this.#videos = fresh;
    this.#render();
  }

  #upsert(video) {
    if (this.#deleted.has(video.id)) return;
    const known = this.#videos.get(video.id);
    if (!known) {
      // Newest first, like the listing.
      this.#videos = new Map([[video.id, video], ...this.#videos]);
      this.#render();
      return;
    }
    this.#videos.set(video.id, { ...known, ...video });
    this.#renderOne(video.id);
    if (this.#playing === video.id) this.#renderPlayerTitle(this.#videos.get(video.id));
  }

  #remove(videoId) {
    this.#deleted.add(videoId);
    if (!this.#videos.delete(videoId)) return;
    this.#render();
  }

  #render() {
    const cards = [...this.#videos.values()].map((video) => this.#card(video));
    this.#grid.replaceChildren(...cards);
    const count = this.#videos.size;
    this.#count.textContent = count ? `(${count})` : '';
    this.#empty.hidden = count > 0;
  }

  #renderOne(videoId) {
    const video = this.#videos.get(videoId);
    const old = this.#grid.querySelector(`[data-video-id="${CSS.escape(videoId)}"]`);
    if (!video || !old) {
      this.#render();
      return;
    }
    const focused = old.contains(document.activeElement)
      ? document.activeElement.dataset.testid
      : null;
    const card = this.#card(video);
    old.replaceWith(card);
    if (focused) card.querySelector(`[data-testid="${focused}"]`)?.focus();
  }

  #statusText(video) {
    const percent = this.#uploading.get(video.id);
    if (video.status === 'pending' && percent !== undefined) return `uploading ${percent}%`;
    return STATUS_TEXT[video.status] ?? video.status;
  }

  #card(video) {
    const signal = this.#abort.signal;
    const title = video.title || 'Untitled';
    const item = element('li', { className: 'video-card video-item', testid: 'video-item' });
    item.dataset.videoId = video.id;
    item.dataset.status = video.status;
    item.classList.toggle('is-playing', this.#playing === video.id);
    const ready = video.status === 'ready';
    const href = libraryPath(this.#roomId, video.id);

    // The picture: the thumbnail of a ready video (a link to play it), else its state.
    const thumb = ready
      ? element('a', { className: 'video-thumb', href, 'data-route': '', tabindex: '-1' })
      : element('div', { className: 'video-thumb' });
    thumb.setAttribute('aria-hidden', 'true');
    if (ready && video.thumbnail_url) {
      const img = element('img', { src: video.thumbnail_url, alt: '', loading: 'lazy' });
      img.decoding = 'async';
      thumb.append(img);
    } else {
      thumb.append(element('span', { className: 'video-thumb-state', text: this.#statusText(video) }));
    }
    const duration = formatDuration(video.duration_seconds);
    if (duration) thumb.append(element('span', { className: 'video-duration', text: duration }));
    item.append(thumb);

    const body = element('div', { className: 'video-card-body' });
    if (this.#editing === video.id) {
      body.append(this.#renameForm(video));
    } else {
      body.append(element('span', { className: 'video-item-title', text: title }));
    }
    const meta = element('div', { className: 'video-card-meta' });
    meta.append(element('span', {
      className: `badge video-status status-${video.status}`,
      text: this.#statusText(video),
      testid: 'video-status',
    }));
    if (video.status === 'pending' && this.#uploading.has(video.id)) {
      const bar = element('progress', { max: '100', value: String(this.#uploading.get(video.id)) });
      bar.className = 'video-card-progress';
      bar.setAttribute('aria-label', `Uploading “${title}”`);
      meta.append(bar);
    }
    body.append(meta);
    if (video.status === 'failed') {
      body.append(element('p', {
        className: 'video-error',
        text: video.error ? `Failed: ${video.error}` : 'Failed.',
        testid: 'video-error',
      }));
    }

    const actions = element('div', { className: 'video-card-actions' });
    if (ready) {
      actions.append(element('a', {
        className: 'button small primary',
        href,
        'data-route': '',
        text: this.#playing === video.id ? 'Playing' : 'Play',
        testid: 'video-play',
        'aria-label': `Play “${title}”`,
      }));
    }
    const mine = this.#mayManage(video.uploader_id ?? null) || video.localOnly;
    // An upload this page is still sending is cancelled by leaving, not from here.
    if (mine && !this.#uploading.has(video.id) && this.#editing !== video.id) {
      if (this.#confirming === video.id) {
        const yes = element('button', {
          className: 'button small danger',
          type: 'button',
          text: 'Delete for everyone',
          testid: 'video-delete-confirm',
        });
        const no = element('button', {
          className: 'button small',
          type: 'button',
          text: 'Keep',
          testid: 'video-delete-cancel',
        });
        yes.addEventListener('click', () => this.delete(video.id), { signal });
        no.addEventListener('click', () => {
          this.#confirming = null;
          this.#renderOne(video.id);
        }, { signal });
        actions.append(yes, no);
      } else {
        if (video.status !== 'failed' && !video.localOnly) {
          const rename = element('button', {
            className: 'button small subtle',
            type: 'button',
            text: 'Rename',
            testid: 'video-rename',
            'aria-label': `Rename “${title}”`,
          });
          rename.addEventListener('click', () => {
            this.#editing = video.id;
            this.#confirming = null;
            this.#renderOne(video.id);
            this.#grid.querySelector('[data-testid="video-rename-input"]')?.focus();
          }, { signal });
          actions.append(rename);
        }
        // A failed video is removed at once; anything else asks first.
        const failed = video.status === 'failed';
        const remove = element('button', {
          className: 'button small subtle danger-text',
          type: 'button',
          text: failed ? 'Remove' : 'Delete',
          testid: 'video-delete',
          'aria-label': `${failed ? 'Remove' : 'Delete'} “${title}”`,
        });
        remove.addEventListener('click', () => {
          if (failed) {
            this.delete(video.id);
            return;
          }
          this.#confirming = video.id;
          this.#renderOne(video.id);
          this.#grid.querySelector('[data-testid="video-delete-confirm"]')?.focus();
        }, { signal });
        actions.append(remove);
      }
    }
    body.append(actions);
    item.append(body);
    return item;
  }

  #renameForm(video) {
    const signal = this.#abort.signal;
    const form = element('form', { className: 'video-rename', novalidate: '' });
    const input = element('input', {
      type: 'text',
      maxlength: '200',
      value: video.title ?? '',
      testid: 'video-rename-input',
      'aria-label': 'New title',
    });
    const save = element('button', {
      className: 'button small primary',
      type: 'submit',
      text: 'Save',
      testid: 'video-rename-save',
    });
    const cancel = element('button', { className: 'button small', type: 'button', text: 'Cancel' });
    const error = element('p', { className: 'form-error', role: 'alert', testid: 'video-rename-error' });
    error.hidden = true;
    const close = () => {
      this.#editing = null;
      this.#renderOne(video.id);
      this.#grid
        .querySelector(`[data-video-id="${CSS.escape(video.id)}"] [data-testid="video-rename"]`)
        ?.focus();
    };
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const title = input.value.trim();
      if (title === video.title) {
        close();
        return;
      }
      if (!title) {
        error.textContent = 'A video needs a title.';
        error.hidden = false;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      save.disabled = true;
      try {
        const updated = await request('PATCH', videoPath(video.id), { body: { title } });
        this.#editing = null;
        this.#upsert(updated);
        close();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
        input.setAttribute('aria-invalid', 'true');
        save.disabled = false;
        input.focus();
      }
    }, { signal });
    cancel.addEventListener('click', close, { signal });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        close();
      }
    }, { signal });
    form.append(input, save, cancel, error);
    return form;
  }

  #onKey(event) {
    if (event.key !== 'Escape' || !this.#confirming) return;
    const id = this.#confirming;
    this.#confirming = null;
    this.#renderOne(id);
  }

  async delete(videoId) {
    const video = this.#videos.get(videoId);
    this.#confirming = null;
    if (video?.localOnly) {
      this.#remove(videoId);
      return;
    }
    try {
      await request('DELETE', videoPath(videoId));
    } catch (error) {
      if (error.status !== 404) {
        toast(`Could not delete the video: ${error.message}`, { kind: 'error' });
        this.#renderOne(videoId);
        return;
      }
    }
    // The room hears video_deleted too; this page need not wait for it.
    this.#gone(videoId, null);
  }

  /** A video deleted (here or by someone else): off the grid, and out of the player. */
  #gone(videoId, by) {
    this.#remove(videoId);
    if (this.#playing !== videoId) return;
    this.#stopPlayer();
    const text = by && by !== this.#self.id
      ? 'This video was deleted by a moderator or its uploader.'
      : 'This video was deleted.';
    this.#player.replaceChildren(element('p', { className: 'notice', text, testid: 'video-gone' }));
    this.#player.hidden = false;
  }

  /** Open a video in the large player (or close the player: null). */
  async open(videoId) {
    if (!videoId) {
      this.#stopPlayer();
      this.#player.hidden = true;
      this.#player.replaceChildren();
      this.#render();
      return;
    }
    if (this.#playing === videoId && this.#player.querySelector('video')) return;
    let video;
    try {
      // The tokenised URLs (private rooms) come from GET /videos/{id}, not from frames.
      video = await request('GET', videoPath(videoId));
    } catch (error) {
      this.#showPlayerMessage(
        error.status === 404 ? 'This video does not exist (any more).' : error.message,
      );
      return;
    }
    if (this.#abort.signal.aborted) return;
    if (!video.playback_url) {
      this.#showPlayerMessage(
        video.status === 'failed'
          ? `This video failed: ${video.error ?? 'no reason given'}.`
          : `“${video.title}” is not ready yet (${STATUS_TEXT[video.status] ?? video.status}).`,
      );
      return;
    }
    const player = element('video', { className: 'video-player', testid: 'video-player' });
    if (!player.canPlayType(HLS_TYPE)) {
      this.#showPlayerMessage('This browser cannot play these videos (no native HLS).');
      return;
    }
    this.#stopPlayer();
    player.controls = true;
    player.playsInline = true;
    player.muted = true; // autoplay policies allow muted playback; the controls unmute
    player.dataset.videoId = video.id;
    player.setAttribute('aria-label', video.title || 'Video');
    if (video.thumbnail_url) player.poster = video.thumbnail_url;
    player.src = video.playback_url;
    this.#playing = video.id;
    const head = element('div', { className: 'library-player-head' });
    head.append(
      element('h3', { className: 'video-player-title', text: video.title || 'Untitled' }),
      element('a', {
        className: 'button small subtle',
        href: libraryPath(this.#roomId),
        'data-route': '',
        text: 'Close',
        testid: 'video-player-close',
        'aria-label': 'Close the player',
      }),
    );
    this.#player.replaceChildren(head, player);
    this.#player.hidden = false;
    this.#upsert(video);
    this.#render();
    // The player is at the top of the library: bring it into view.
    this.#root.scrollTo?.({ top: 0 });
    this.#player.scrollIntoView({ block: 'nearest' });
    player.play().catch(() => {});
  }

  #renderPlayerTitle(video) {
    const title = this.#player.querySelector('.video-player-title');
    if (title && video) title.textContent = video.title || 'Untitled';
  }

  #showPlayerMessage(text) {
    this.#stopPlayer();
    this.#player.replaceChildren(element('p', { className: 'notice', text, testid: 'video-gone' }));
    this.#player.hidden = false;
  }

  #stopPlayer() {
    const video = this.#player.querySelector('video');
    if (video) {
      video.pause();
      video.removeAttribute('src');
      video.load();
    }
    this.#playing = null;
  }

  onFrame(frame) {
    if (frame.room_id && frame.room_id !== this.#roomId) return;
    if (frame.type === 'video_deleted') {
      this.#gone(frame.video_id, frame.by ?? null);
      return;
    }
    if (frame.type !== 'video_status' || this.#deleted.has(frame.video_id)) return;
    if (!this.#videos.has(frame.video_id)) {
      this.refresh(); // someone else's upload: fetch it whole
      return;
    }
    const update = { id: frame.video_id, status: frame.status, room_id: frame.room_id };
    if (frame.title !== undefined) update.title = frame.title;
    if (frame.error !== undefined) update.error = frame.error;
    if (frame.duration_seconds !== undefined) update.duration_seconds = frame.duration_seconds;
    this.#upsert(update);
    if (frame.status === 'ready') this.#fetchOne(frame.video_id);
    if (frame.video_id === this.#lastUpload && ['ready', 'failed'].includes(frame.status)) {
      // The card says it now; the form's line would only repeat an older state.
      this.#lastUpload = null;
      this.#progressLabel.textContent = '';
    }
  }

  /** Ready: its thumbnail and (tokenised) URLs come from the API, not from the frame. */
  async #fetchOne(videoId) {
    try {
      const video = await request('GET', videoPath(videoId));
      if (!this.#abort.signal.aborted && this.#videos.has(videoId)) this.#upsert(video);
    } catch {
      // Deleted meanwhile, or offline: the next refresh settles it.
    }
  }

  /** Roles changed (a promotion, a demotion): who may rename and delete what. */
  rerender() {
    this.#render();
  }

  destroy() {
    this.#abort.abort();
    this.#stopPlayer();
    this.#root.replaceChildren();
  }
}

/** Fill the room's library view; forward socket frames to onFrame. */
export function mountVideos(options) {
  const library = new VideoLibrary(options);
  return {
    onFrame: (frame) => library.onFrame(frame),
    open: (videoId) => library.open(videoId),
    rerender: () => library.rerender(),
    destroy: () => library.destroy(),
  };
}
