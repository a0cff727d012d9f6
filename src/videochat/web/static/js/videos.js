// The room's video library: upload a recording (with a progress bar), follow its
// status live (`video_status` socket frames) and play the ready ones (native HLS).
//
// Mounted by room.js: mountVideos({roomId, stage}) -> {onFrame, destroy}.

import { accessToken, request } from './api.js';
import { element, toast } from './ui.js';

const HLS_TYPE = 'application/vnd.apple.mpegurl';
const STATUS_TEXT = {
  pending: 'waiting for the upload',
  uploaded: 'uploaded, queued',
  processing: 'processing…',
  ready: 'ready',
  failed: 'failed',
};

const STATUS_ORDER = ['pending', 'uploaded', 'processing', 'ready', 'failed'];

const roomPath = (roomId) => `/rooms/${encodeURIComponent(roomId)}`;
const videoPath = (videoId) => `/videos/${encodeURIComponent(videoId)}`;

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

class VideosPanel {
  #roomId;
  #root;
  #form;
  #title;
  #file;
  #submit;
  #progress;
  #progressLabel;
  #list;
  #player;
  #videos = new Map(); // id -> video (as the API or the last frame described it)
  #playing = null;
  #abort = new AbortController();

  constructor({ roomId, stage }) {
    this.#roomId = roomId;
    const signal = this.#abort.signal;
    this.#root = element('section', {
      className: 'card videos-panel',
      testid: 'videos-panel',
      'aria-labelledby': 'videos-title',
    });
    const heading = element('h2', { id: 'videos-title', text: 'Videos' });

    this.#form = element('form', { className: 'videos-form', novalidate: '' });
    const titleLabel = element('label', { for: 'video-title', text: 'Title' });
    this.#title = element('input', {
      id: 'video-title',
      type: 'text',
      maxlength: '200',
      required: '',
      testid: 'video-title',
    });
    const fileLabel = element('label', { for: 'video-file', text: 'Video file' });
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
      className: 'help',
      'aria-live': 'polite',
    });
    this.#progress = element('progress', {
      className: 'video-progress',
      max: '100',
      value: '0',
      testid: 'video-progress',
      'aria-labelledby': 'video-progress-label',
    });
    this.#progress.hidden = true;
    this.#form.append(
      titleLabel,
      this.#title,
      fileLabel,
      this.#file,
      this.#submit,
      this.#progress,
      this.#progressLabel,
    );
    this.#form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.upload();
    }, { signal });
    // Suggest the file's name as the title when none was typed.
    this.#file.addEventListener('change', () => {
      const file = this.#file.files?.[0];
      if (file && !this.#title.value.trim()) this.#title.value = file.name.replace(/\.[^.]+$/, '');
    }, { signal });

    this.#list = element('ul', { className: 'videos-list', 'aria-label': 'Videos in this room' });
    this.#player = element('div', { className: 'videos-player' });
    this.#root.append(heading, this.#form, this.#list, this.#player);
    stage.append(this.#root);
    this.refresh();
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
    this.#setProgress(0);
    try {
      const slot = await request('POST', `${roomPath(this.#roomId)}/video-upload`, {
        body: { title, description: '' },
      });
      this.#upsert({ ...slot, room_id: this.#roomId });
      const token = await accessToken();
      const onProgress = (fraction) => this.#setProgress(fraction);
      if (slot.tus_url) {
        await tusUpload(slot.tus_url, file, token, onProgress, this.#abort.signal);
      } else {
        // Providers without tus (Bunny Stream): one streamed PUT.
        await putFile(slot.upload_url, file, token, onProgress, this.#abort.signal);
      }
      this.#setProgress(1, 'Uploaded: the video is being processed.');
      this.#form.reset();
      this.refresh();
    } catch (error) {
      if (this.#abort.signal.aborted) return;
      this.#setProgress(0, `Upload failed: ${error.message}`);
      toast(`Could not upload the video: ${error.message}`, { kind: 'error' });
    } finally {
      this.#submit.disabled = false;
    }
  }

  async refresh() {
    let videos;
    try {
      videos = await request('GET', `${roomPath(this.#roomId)}/videos`);
    } catch {
      return; // a transient failure: the next frame or upload refreshes again
    }
    if (this.#abort.signal.aborted) return;
    const items = Array.isArray(videos) ? videos : (videos?.items ?? []);
    // A frame may have overtaken this answer: never step a known video back.
    const rank = (video) => STATUS_ORDER.indexOf(video?.status);
    this.#videos = new Map(
      items.map((video) => {
        const known = this.#videos.get(video.id);
        const newer = known && rank(known) > rank(video);
        return [video.id, newer ? { ...video, status: known.status, error: known.error } : video];
      }),
    );
    this.#render();
  }

  #upsert(video) {
    const known = this.#videos.get(video.id);
    if (!known) {
      // Newest first, like the listing.
      this.#videos = new Map([[video.id, video], ...this.#videos]);
    } else {
      this.#videos.set(video.id, { ...known, ...video });
    }
    this.#render();
  }

  #render() {
    this.#list.replaceChildren(...[...this.#videos.values()].map((video) => this.#item(video)));
  }

  #item(video) {
    const item = element('li', { className: 'video-item', testid: 'video-item' });
    item.dataset.videoId = video.id;
    item.dataset.status = video.status;
    const title = element('span', { className: 'video-item-title', text: video.title || 'Untitled' });
    const status = element('span', {
      className: `badge video-status status-${video.status}`,
      text: STATUS_TEXT[video.status] ?? video.status,
    });
    item.append(title, status);
    if (video.status === 'failed' && video.error) {
      item.append(element('p', { className: 'video-error', text: video.error }));
    }
    if (video.status === 'ready') {
      const play = element('button', {
        className: 'button subtle',
        type: 'button',
        text: this.#playing === video.id ? 'Playing' : 'Play',
        testid: 'video-play',
        'aria-label': `Play “${video.title || 'Untitled'}”`,
      });
      play.addEventListener('click', () => this.play(video.id), { signal: this.#abort.signal });
      item.append(play);
      item.classList.add('is-playable');
    }
    return item;
  }

  async play(videoId) {
    let video;
    try {
      // The tokenised URLs (private rooms) come from GET /videos/{id}, not from frames.
      video = await request('GET', videoPath(videoId));
    } catch (error) {
      toast(`Could not open the video: ${error.message}`, { kind: 'error' });
      return;
    }
    if (this.#abort.signal.aborted || !video.playback_url) return;
    const player = element('video', { className: 'video-player', testid: 'video-player' });
    player.controls = true;
    player.playsInline = true;
    player.muted = true; // autoplay policies allow muted playback; the controls unmute
    player.dataset.videoId = video.id;
    player.setAttribute('aria-label', video.title || 'Video');
    if (!player.canPlayType(HLS_TYPE)) {
      toast('This browser cannot play these videos (no native HLS).', { kind: 'error' });
      return;
    }
    if (video.thumbnail_url) player.poster = video.thumbnail_url;
    player.src = video.playback_url;
    this.#playing = video.id;
    this.#player.replaceChildren(
      element('p', { className: 'video-player-title', text: video.title || 'Untitled' }),
      player,
    );
    this.#render();
    player.play().catch(() => {});
  }

  onFrame(frame) {
    if (frame.type !== 'video_status' || (frame.room_id && frame.room_id !== this.#roomId)) return;
    const update = { id: frame.video_id, status: frame.status, room_id: frame.room_id };
    if (frame.title !== undefined) update.title = frame.title;
    if (frame.error !== undefined) update.error = frame.error;
    if (!this.#videos.has(frame.video_id)) {
      this.refresh(); // someone else's upload: fetch it whole
      return;
    }
    this.#upsert(update);
  }

  destroy() {
    this.#abort.abort();
    this.#player.replaceChildren();
    this.#root.remove();
  }
}

/** Put the videos panel in the room's sidebar; forward socket frames to onFrame. */
export function mountVideos({ roomId, stage }) {
  const panel = new VideosPanel({ roomId, stage });
  return { onFrame: (frame) => panel.onFrame(frame), destroy: () => panel.destroy() };
}
