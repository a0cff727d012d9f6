// Live streaming in a room: "Go live" publishes the camera or the screen to the
// server over WHIP (RFC 9725), or hands out the WHIP URL and stream key for OBS;
// everyone else sees a LIVE badge and can watch the stream's HLS in a <video>
// element (native HLS, as Safari and Chromium play it), which says "Stream ended"
// when it ends (the `live_ended` frame, or a player that stopped on an ended stream).
//
// Mounted by room.js: mountLive({roomId, self, stage}) -> {onFrame, destroy}.

import { ApiError, NewestAnswer, api, request } from './api.js';
import { element, toast } from './ui.js';

const HLS_TYPE = 'application/vnd.apple.mpegurl';
// ICE gathering normally completes in well under a second; past this, send what we have.
const GATHER_TIMEOUT_MS = 3000;
// The playlist appears one segment (~2 s) after going live; players fail on a 404.
const PLAYLIST_WAIT_MS = 20000;
// Start only once the live playlist lists this many segments (RFC 8216 has players
// start three target durations from the end): Chromium's native HLS fails on a live
// playlist of one segment (DEMUXER_ERROR_COULD_NOT_PARSE).
const MIN_LIVE_SEGMENTS = 3;
// A player error while the stream is still live: reload the playlist, a few times.
const RETRY_MS = 1000;
const MAX_RETRIES = 5;
// A watched stream whose picture has not moved this long: ask whether it ended.
const STALL_CHECK_MS = 4000;
const ENDED_TEXT = {
  deleted: 'The broadcaster ended the stream.',
  stopped: 'The stream was stopped.',
  disconnected: 'The broadcaster’s connection dropped.',
  timeout: 'The broadcaster stopped sending.',
  banned: 'The broadcaster was removed from the room.',
  kicked: 'The broadcaster was removed from the room.',
  muted: 'A moderator muted the broadcaster.',
};

const absolute = (url) => new URL(url, window.location.href).href;
const libraryVideoPath = (roomId, videoId) =>
  `/chat/rooms/${encodeURIComponent(roomId)}/videos/${encodeURIComponent(videoId)}`;

/** Copy text, or leave it selected in its field for Ctrl+C when the clipboard says no. */
async function copyText(text, field, button) {
  try {
    await navigator.clipboard.writeText(text);
    const label = button.textContent;
    button.textContent = 'Copied';
    button.dataset.copied = 'true';
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  } catch {
    field.type = 'text';
    field.select();
    toast('Press Ctrl+C to copy.', { kind: 'warn' });
  }
}

function segmentCount(text) {
  return text.split('\n').filter((line) => line.trim() && !line.startsWith('#')).length;
}

const roomStreams = (roomId) => `/rooms/${encodeURIComponent(roomId)}/live-streams`;

function waitForGathering(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

/** A WHIP publisher: one peer connection sending a local stream to a whip_url. */
class WhipPublisher {
  #pc = null;
  #location = null;
  #key = null;

  async start(whipUrl, key, media, iceServers) {
    this.#key = key;
    this.#pc = new RTCPeerConnection({ iceServers: iceServers ?? [] });
    for (const track of media.getTracks()) {
      this.#pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
    }
    await this.#pc.setLocalDescription(await this.#pc.createOffer());
    // The server does not take trickled candidates: the offer must hold them all.
    await waitForGathering(this.#pc);
    const response = await fetch(whipUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
      body: this.#pc.localDescription.sdp,
    });
    if (response.status !== 201) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail ?? detail;
      } catch {
        // not JSON: keep the status text
      }
      throw new ApiError(response.status, detail);
    }
    const location = response.headers.get('Location');
    this.#location = location ? new URL(location, new URL(whipUrl, window.location.href)).href : null;
    await this.#pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    return this.#pc;
  }

  async stop() {
    const location = this.#location;
    this.#location = null;
    if (location) {
      // Ends the stream on the server; the broadcast is kept in the room's videos.
      await fetch(location, {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${this.#key}` },
      }).catch(() => {});
    }
    this.#pc?.close();
    this.#pc = null;
  }
}

class LivePanel {
  #roomId;
  #self;
  #root;
  #list;
  #player;
  #form;
  #goLive;
  #stopButton;
  #preview;
  #publisher = null;
  #media = null;
  #publishing = null; // the stream we publish from this page
  #starting = null; // its id, from its creation on (before the WHIP answer)
  #watching = null; // the stream id being played
  #watchTimer = null;
  #encoder; // the OBS settings of our streams that an encoder publishes
  #encoderStreams = new Map(); // stream id -> stream (ours, ready or live, not from this page)
  #listings = new NewestAnswer();
  #revealed = new Set(); // stream ids whose key is shown
  #abort = new AbortController();

  constructor({ roomId, self, stage }) {
    this.#roomId = roomId;
    this.#self = self;
    this.#root = element('section', { className: 'live-panel card', 'aria-label': 'Live' });
    const head = element('div', { className: 'card-head' });
    this.#goLive = element('button', {
      className: 'button primary',
      text: 'Go live',
      testid: 'go-live',
      type: 'button',
    });
    this.#stopButton = element('button', {
      className: 'button danger',
      text: 'End live stream',
      testid: 'live-stop',
      type: 'button',
    });
    this.#stopButton.hidden = true;
    head.append(element('h2', { text: 'Live' }), this.#goLive, this.#stopButton);

    this.#form = this.#buildForm();
    this.#form.hidden = true;
    this.#preview = element('video', { className: 'live-preview', testid: 'live-preview' });
    this.#preview.muted = true;
    this.#preview.playsInline = true;
    this.#preview.hidden = true;
    this.#list = element('ul', { className: 'live-list', testid: 'live-list' });
    this.#player = element('div', { className: 'live-player' });
    this.#encoder = element('div', { className: 'live-encoders' });
    this.#root.append(head, this.#form, this.#encoder, this.#preview, this.#list, this.#player);
    stage.append(this.#root);

    const on = { signal: this.#abort.signal };
    this.#goLive.addEventListener('click', () => {
      this.#form.hidden = !this.#form.hidden;
    }, on);
    this.#stopButton.addEventListener('click', () => this.stopPublishing(), on);
    this.refresh();
  }

  #buildForm() {
    const form = element('form', { className: 'live-form', novalidate: '' });
    const title = element('input', {
      id: 'live-title',
      name: 'title',
      required: '',
      maxlength: '200',
      testid: 'live-title',
      value: `${this.#self.username} is live`,
    });
    const source = element('select', { id: 'live-source', name: 'source', testid: 'live-source' });
    source.append(
      element('option', { value: 'camera', text: 'Camera and microphone' }),
      element('option', { value: 'screen', text: 'Screen' }),
      element('option', { value: 'encoder', text: 'OBS or another WHIP encoder' }),
    );
    const start = element('button', {
      className: 'button primary',
      type: 'submit',
      text: 'Start',
      testid: 'live-start',
    });
    form.append(
      element('label', { for: 'live-title', text: 'Title' }),
      title,
      element('label', { for: 'live-source', text: 'Source' }),
      source,
      start,
    );
    source.addEventListener('change', () => {
      start.textContent = source.value === 'encoder' ? 'Get the stream key' : 'Start';
    }, { signal: this.#abort.signal });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      start.disabled = true;
      const name = title.value.trim() || 'Live';
      const begun = source.value === 'encoder'
        ? this.createForEncoder(name)
        : this.startPublishing(name, source.value);
      begun.finally(() => {
        start.disabled = false;
      });
    }, { signal: this.#abort.signal });
    return form;
  }

  /** A stream for OBS (or any WHIP encoder): show where to send it and with which key. */
  async createForEncoder(title) {
    try {
      const stream = await request('POST', `/rooms/${encodeURIComponent(this.#roomId)}/live-stream`, {
        body: { title },
      });
      this.#encoderStreams.set(stream.id, stream);
      this.#form.hidden = true;
      this.#renderEncoders();
      this.#encoder.querySelector('[data-testid="live-copy-url"]')?.focus();
      this.refresh();
    } catch (error) {
      toast(`Could not create the stream: ${error.message}`, { kind: 'error' });
    }
  }

  #renderEncoders() {
    const panels = [...this.#encoderStreams.values()].map((stream) => this.#encoderPanel(stream));
    this.#encoder.replaceChildren(...panels);
  }

  /** The OBS settings of one stream: WHIP URL, stream key (hidden until revealed). */
  #encoderPanel(stream) {
    const on = { signal: this.#abort.signal };
    const panel = element('section', {
      className: 'live-obs',
      testid: 'live-obs',
      'aria-label': `Stream settings for “${stream.title}”`,
    });
    panel.dataset.streamId = stream.id;
    const live = stream.status === 'live';
    const state = element('p', {
      className: 'live-obs-state',
      testid: 'live-obs-state',
      role: 'status',
      text: live ? `Live from your encoder: “${stream.title}”` : 'Waiting for OBS to connect…',
    });
    state.dataset.state = stream.status;

    const urlId = `live-whip-${stream.id}`;
    const url = element('input', {
      id: urlId,
      readonly: '',
      value: absolute(stream.whip_url),
      testid: 'live-whip-url',
      spellcheck: 'false',
    });
    const copyUrl = element('button', {
      className: 'button small',
      type: 'button',
      text: 'Copy',
      testid: 'live-copy-url',
      'aria-label': 'Copy the WHIP server URL',
    });
    copyUrl.addEventListener('click', () => copyText(url.value, url, copyUrl), on);
    const urlRow = element('div', { className: 'live-field' });
    urlRow.append(url, copyUrl);

    const keyId = `live-key-${stream.id}`;
    const revealed = this.#revealed.has(stream.id);
    const key = element('input', {
      id: keyId,
      readonly: '',
      type: revealed ? 'text' : 'password',
      value: stream.stream_key ?? '',
      testid: 'live-stream-key',
      autocomplete: 'off',
      spellcheck: 'false',
    });
    const reveal = element('button', {
      className: 'button small',
      type: 'button',
      text: revealed ? 'Hide' : 'Reveal',
      testid: 'live-reveal-key',
      'aria-pressed': String(revealed),
      'aria-label': revealed ? 'Hide the stream key' : 'Reveal the stream key',
    });
    reveal.addEventListener('click', () => {
      const show = key.type === 'password';
      key.type = show ? 'text' : 'password';
      reveal.textContent = show ? 'Hide' : 'Reveal';
      reveal.setAttribute('aria-pressed', String(show));
      reveal.setAttribute('aria-label', show ? 'Hide the stream key' : 'Reveal the stream key');
      if (show) this.#revealed.add(stream.id);
      else this.#revealed.delete(stream.id);
    }, on);
    const copyKey = element('button', {
      className: 'button small',
      type: 'button',
      text: 'Copy',
      testid: 'live-copy-key',
      'aria-label': 'Copy the stream key',
    });
    copyKey.addEventListener('click', () => copyText(key.value, key, copyKey), on);
    const keyRow = element('div', { className: 'live-field' });
    keyRow.append(key, reveal, copyKey);

    const end = element('button', {
      className: 'button small danger',
      type: 'button',
      text: live ? 'End live stream' : 'Cancel this stream',
      testid: 'live-obs-end',
    });
    end.addEventListener('click', () => this.#endEncoderStream(stream.id, end), on);

    panel.append(
      element('h3', { text: `Stream from OBS: “${stream.title}”` }),
      state,
      element('label', { for: urlId, text: 'Server (WHIP URL)' }),
      urlRow,
      element('label', { for: keyId, text: 'Stream key (Bearer Token)' }),
      keyRow,
      element('p', {
        className: 'live-obs-hint',
        testid: 'live-obs-hint',
        text: 'In OBS: Settings > Stream > Service: WHIP. Paste the server URL and the ' +
          'stream key as the Bearer Token, then Start Streaming. Keep the key secret: ' +
          'whoever has it can stream here.',
      }),
      end,
    );
    return panel;
  }

  async #endEncoderStream(streamId, button) {
    button.disabled = true;
    try {
      await request('POST', `/live-streams/${encodeURIComponent(streamId)}/stop`);
      this.#encoderStreams.delete(streamId);
      this.#renderEncoders();
    } catch (error) {
      toast(`Could not end the stream: ${error.message}`, { kind: 'error' });
      button.disabled = false;
    }
    this.refresh();
  }

  async startPublishing(title, source) {
    try {
      this.#media = source === 'screen'
        ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true })
        : await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const stream = await request('POST', `/rooms/${encodeURIComponent(this.#roomId)}/live-stream`, {
        body: { title },
      });
      this.#starting = stream.id;
      const servers = await api.iceServers().catch(() => null);
      this.#publisher = new WhipPublisher();
      const pc = await this.#publisher.start(
        stream.whip_url,
        stream.stream_key,
        this.#media,
        (servers?.ice_servers ?? []).filter((server) => server?.urls),
      );
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'failed') {
          toast('The live stream lost its connection.', { kind: 'error' });
          this.stopPublishing();
        }
      });
      // Ending the screen share from the browser's own bar ends the stream too.
      this.#media.getVideoTracks()[0]?.addEventListener('ended', () => this.stopPublishing());
      this.#publishing = stream;
      this.#preview.srcObject = this.#media;
      this.#preview.hidden = false;
      this.#preview.play().catch(() => {});
      this.#form.hidden = true;
      this.#render();
      this.refresh();
    } catch (error) {
      toast(`Could not go live: ${error.message}`, { kind: 'error' });
      const created = this.#starting;
      if (created && !this.#publishing) {
        // Created but never published: end it, so no unused stream (and key) lingers.
        await request('POST', `/live-streams/${encodeURIComponent(created)}/stop`).catch(() => {});
      }
      await this.stopPublishing();
    }
  }

  async stopPublishing() {
    const publisher = this.#publisher;
    this.#publisher = null;
    this.#publishing = null;
    this.#starting = null;
    for (const track of this.#media?.getTracks() ?? []) track.stop();
    this.#media = null;
    this.#preview.srcObject = null;
    this.#preview.hidden = true;
    this.#render();
    await publisher?.stop();
    this.refresh();
  }

  #render() {
    const live = Boolean(this.#publishing);
    this.#goLive.hidden = live;
    this.#stopButton.hidden = !live;
    this.#root.classList.toggle('is-publishing', live);
  }

  async refresh() {
    const asked = this.#listings.ask();
    let streams;
    try {
      streams = await request('GET', roomStreams(this.#roomId));
    } catch {
      return; // a transient failure: the next frame or action refreshes again
    }
    // Each frame and action asks again, and answers may arrive out of order: an older
    // one would bring back a stream that has ended since. Only the newest is shown.
    if (this.#abort.signal.aborted || !this.#listings.isNewest(asked)) return;
    const live = streams.filter((stream) => stream.status === 'live');
    this.#list.replaceChildren(...live.map((stream) => this.#item(stream)));
    // Our streams that an encoder publishes (or will): their settings, also after a reload.
    const encoders = streams.filter(
      (stream) =>
        stream.stream_key &&
        stream.status !== 'ended' &&
        stream.id !== this.#starting &&
        stream.id !== this.#publishing?.id &&
        stream.owner_id === this.#self.id,
    );
    const before = JSON.stringify([...this.#encoderStreams.values()].map((s) => [s.id, s.status]));
    this.#encoderStreams = new Map(encoders.map((stream) => [stream.id, stream]));
    const after = JSON.stringify(encoders.map((stream) => [stream.id, stream.status]));
    if (before !== after) this.#renderEncoders();
  }

  #item(stream) {
    const item = element('li', { className: 'live-item', testid: 'live-stream' });
    item.dataset.streamId = stream.id;
    const badge = element('span', { className: 'badge live-badge', text: 'LIVE', testid: 'live-badge' });
    item.append(badge, element('span', { className: 'live-item-title', text: ` ${stream.title} ` }));
    if (stream.id !== this.#publishing?.id) {
      const watch = element('button', {
        className: 'button subtle',
        type: 'button',
        text: this.#watching === stream.id ? 'Watching' : 'Watch',
        testid: 'watch-live',
      });
      watch.disabled = this.#watching === stream.id;
      watch.addEventListener('click', () => this.watch(stream), { signal: this.#abort.signal });
      item.append(watch);
    }
    return item;
  }

  async watch(stream) {
    const video = element('video', { className: 'live-video', testid: 'live-video' });
    video.controls = true;
    video.autoplay = true;
    video.muted = true; // autoplay policies allow muted playback; the controls unmute
    video.playsInline = true;
    if (!video.canPlayType(HLS_TYPE)) {
      toast('This browser cannot play live streams (no native HLS).', { kind: 'error' });
      return;
    }
    this.#watching = stream.id;
    this.#player.replaceChildren(
      element('p', { className: 'help', text: `Waiting for “${stream.title}”…` }),
    );
    const deadline = Date.now() + PLAYLIST_WAIT_MS;
    while (Date.now() < deadline && this.#watching === stream.id) {
      const response = await fetch(stream.pull_url, { cache: 'no-store' }).catch(() => null);
      const text = response?.ok ? await response.text().catch(() => '') : '';
      if (text.includes('#EXT-X-ENDLIST') || segmentCount(text) >= MIN_LIVE_SEGMENTS) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    if (this.#watching !== stream.id) return;
    let retries = 0;
    video.dataset.retries = '0';
    video.addEventListener('error', () => {
      if (this.#watching !== stream.id || retries >= MAX_RETRIES) return;
      retries += 1;
      video.dataset.retries = String(retries);
      setTimeout(() => {
        if (this.#watching !== stream.id) return;
        video.src = stream.pull_url;
        video.play().catch(() => {});
      }, RETRY_MS);
    }, { signal: this.#abort.signal });
    video.src = stream.pull_url;
    video.dataset.streamId = stream.id;
    // The player stops at the end of a closed playlist: the stream ended (a socket
    // that missed the frame must not leave a frozen picture).
    video.addEventListener('ended', () => this.#checkEnded(stream), { signal: this.#abort.signal });
    this.#player.replaceChildren(video);
    video.play().catch(() => {});
    this.#watchStalls(stream, video);
    this.refresh();
  }

  /** While watching: a picture that stopped moving is checked against the stream's state. */
  #watchStalls(stream, video) {
    clearInterval(this.#watchTimer);
    let last = -1;
    let still = 0;
    this.#watchTimer = setInterval(() => {
      if (this.#watching !== stream.id) {
        clearInterval(this.#watchTimer);
        return;
      }
      still = video.currentTime === last ? still + 1 : 0;
      last = video.currentTime;
      // A viewer's own pause is no stall; a live player waiting for segments is.
      if (still >= 1 && !video.paused) this.#checkEnded(stream);
    }, STALL_CHECK_MS);
  }

  async #checkEnded(stream) {
    let now;
    try {
      now = await request('GET', `/live-streams/${encodeURIComponent(stream.id)}`);
    } catch (error) {
      if (error.status === 404) this.#showEnded({ ...stream, ended_reason: null, video_id: null });
      return; // offline: the next check (or the live_ended frame) tells
    }
    if (now.status === 'ended') this.#showEnded(now);
  }

  /** The stream we watch has ended: say so instead of a frozen last picture. */
  #showEnded({ id, title, ended_reason: reason, video_id: videoId }) {
    if (this.#watching !== id) return;
    this.#watching = null;
    clearInterval(this.#watchTimer);
    const video = this.#player.querySelector('video');
    if (video) {
      video.pause();
      video.removeAttribute('src');
      video.load();
    }
    const box = element('div', { className: 'live-ended', testid: 'live-ended', role: 'status' });
    box.dataset.streamId = id;
    box.append(element('strong', { text: 'Stream ended' }));
    const why = ENDED_TEXT[reason] ?? '';
    box.append(element('p', { text: `“${title ?? 'The stream'}” is over. ${why}`.trim() }));
    const row = element('div', { className: 'row' });
    if (videoId) {
      row.append(element('a', {
        className: 'button small primary',
        href: libraryVideoPath(this.#roomId, videoId),
        'data-route': '',
        text: 'Watch the recording',
        testid: 'live-recording',
      }));
    }
    const close = element('button', {
      className: 'button small',
      type: 'button',
      text: 'Close',
      testid: 'live-ended-close',
    });
    close.addEventListener('click', () => this.#player.replaceChildren(), {
      signal: this.#abort.signal,
    });
    row.append(close);
    box.append(row);
    this.#player.replaceChildren(box);
    this.refresh();
  }

  onFrame(frame) {
    if (frame.type === 'live_ended') {
      this.#showEnded({
        id: frame.stream_id,
        title: frame.title,
        ended_reason: frame.reason,
        video_id: frame.video_id,
      });
      this.#encoderStreams.delete(frame.stream_id);
      this.#renderEncoders();
      // Ended from elsewhere (a moderator, the server) while this page published it.
      if (this.#publishing?.id === frame.stream_id) this.stopPublishing();
    }
    if (frame.type === 'live_started' || frame.type === 'live_ended') this.refresh();
  }

  destroy() {
    this.#abort.abort();
    this.#watching = null;
    clearInterval(this.#watchTimer);
    this.stopPublishing();
    this.#root.remove();
  }
}

/** Put the live panel on the room's stage; forward socket frames to onFrame. */
export function mountLive({ roomId, self, stage }) {
  const panel = new LivePanel({ roomId, self, stage });
  return { onFrame: (frame) => panel.onFrame(frame), destroy: () => panel.destroy() };
}
