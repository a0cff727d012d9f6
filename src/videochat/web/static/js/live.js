// Live streaming in a room: "Go live" publishes the camera or the screen to the
// server over WHIP (RFC 9725); everyone else sees a LIVE badge and can watch the
// stream's HLS in a <video> element (native HLS, as Safari and Chromium play it).
//
// Mounted by room.js: mountLive({roomId, self, stage}) -> {onFrame, destroy}.

import { ApiError, api, request } from './api.js';
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
  #publishing = null; // the stream we publish
  #watching = null; // the stream id being played
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
    this.#root.append(head, this.#form, this.#preview, this.#list, this.#player);
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
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      start.disabled = true;
      this.startPublishing(title.value.trim() || 'Live', source.value).finally(() => {
        start.disabled = false;
      });
    }, { signal: this.#abort.signal });
    return form;
  }

  async startPublishing(title, source) {
    try {
      this.#media = source === 'screen'
        ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true })
        : await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const stream = await request('POST', `/rooms/${encodeURIComponent(this.#roomId)}/live-stream`, {
        body: { title },
      });
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
      await this.stopPublishing();
    }
  }

  async stopPublishing() {
    const publisher = this.#publisher;
    this.#publisher = null;
    this.#publishing = null;
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
    let streams;
    try {
      streams = await request('GET', roomStreams(this.#roomId));
    } catch {
      return; // a transient failure: the next frame or action refreshes again
    }
    const live = streams.filter((stream) => stream.status === 'live');
    this.#list.replaceChildren(...live.map((stream) => this.#item(stream)));
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
    this.#player.replaceChildren(video);
    video.play().catch(() => {});
    this.refresh();
  }

  onFrame(frame) {
    if (frame.type === 'live_started' || frame.type === 'live_ended') this.refresh();
  }

  destroy() {
    this.#abort.abort();
    this.#watching = null;
    this.stopPublishing();
    this.#root.remove();
  }
}

/** Put the live panel on the room's stage; forward socket frames to onFrame. */
export function mountLive({ roomId, self, stage }) {
  const panel = new LivePanel({ roomId, self, stage });
  return { onFrame: (frame) => panel.onFrame(frame), destroy: () => panel.destroy() };
}
