// The call on the SFU (Janus's VideoRoom): we publish our tracks once, and subscribe
// to each other person's publication, one receive-only connection per person (so the
// tiles, timings and window.videochat.peers work as in the mesh). The server decides
// when a room's call is on the SFU (`call_mode` in the presence list) and admits us
// with a grant: a short-lived Janus token, renewed while we are in the call.
//
// We speak Janus's plain HTTP API (fetch and a long poll) rather than load janus.js:
// a few requests are all a VideoRoom needs, it runs against any Janus the server
// names without another script to serve, and the same requests are what the Python
// tests send (sfu/janus.py's JanusSession).
//
// Whose publication is whose: the server says, never the publication itself (Janus lets
// anyone admitted send any id and display). We bind our grant to the handle we publish
// from before joining; the server answers whose each feed is only while it is held by
// its grant holder's own handle (sfu/feeds.py), and we show a publication only for
// someone the server names and the presence list has in the call.

import { api } from './api.js';

const VIDEOROOM = 'janus.plugin.videoroom';
// Janus ends a session that is silent for its session_timeout (60 s by default).
const KEEPALIVE_MS = 25_000;
const RETRY_MS = 2_000;
const MAX_START_ATTEMPTS = 5;
// Asking the server again whose an announced feed is, when it named nobody.
const MAX_RESOLVE_RETRIES = 3;
// Janus's VideoRoom: the publisher id is taken (our previous page still holds it).
const ID_TAKEN = 436;
// Janus: no such session (it timed out) / the token was withdrawn.
const SESSION_GONE = new Set([458, 403]);
// Three qualities of our picture where the browser offers simulcast: Janus forwards
// each subscriber the best one it can take (the top one by default).
const SIMULCAST = [
  { rid: 'h', maxBitrate: 900_000 },
  { rid: 'm', maxBitrate: 300_000, scaleResolutionDownBy: 2 },
  { rid: 'l', maxBitrate: 100_000, scaleResolutionDownBy: 4 },
];

function transactionId() {
  return Array.from(crypto.getRandomValues(new Uint32Array(3)), (n) => n.toString(16)).join('');
}

class JanusError extends Error {
  constructor(code, reason) {
    super(`Janus error ${code}: ${reason}`);
    this.code = code;
  }
}

/** One Janus API session: requests, a long poll for events, keepalives. */
class JanusSession {
  id = null;
  #url;
  #token;
  #handlers = new Map(); // handle id → (event) => void
  #waiting = new Map(); // transaction → {resolve, reject}
  #keepalive = null;
  #closed = false;
  #onGone;
  // Aborts the long poll when we leave: Janus cutting it off logs a console error.
  #polling = new AbortController();

  constructor(url, token, onGone) {
    this.#url = url.replace(/\/+$/, '');
    this.#token = token;
    this.#onGone = onGone;
  }

  async create() {
    const answer = await this.#post('', { janus: 'create' });
    this.id = answer.data.id;
    this.#poll();
    this.#keepalive = setInterval(() => {
      this.#post(`/${this.id}`, { janus: 'keepalive' }).catch((error) => this.#lost(error));
    }, KEEPALIVE_MS);
  }

  async attach(onEvent) {
    const answer = await this.#post(`/${this.id}`, { janus: 'attach', plugin: VIDEOROOM });
    const handle = answer.data.id;
    this.#handlers.set(handle, onEvent);
    return handle;
  }

  /** A plugin request; an asynchronous one resolves with the event that answers it. */
  async message(handle, body, jsep) {
    const transaction = transactionId();
    const answered = new Promise((resolve, reject) => {
      this.#waiting.set(transaction, { resolve, reject });
    });
    let answer;
    try {
      answer = await this.#post(
        `/${this.id}/${handle}`,
        { janus: 'message', body, ...(jsep ? { jsep } : {}) },
        transaction,
      );
    } catch (error) {
      this.#waiting.delete(transaction);
      throw error;
    }
    if (answer.janus !== 'ack') {
      this.#waiting.delete(transaction);
      return answer;
    }
    return answered;
  }

  trickle(handle, candidate) {
    const body = candidate ? { candidate } : { candidate: { completed: true } };
    this.#post(`/${this.id}/${handle}`, { janus: 'trickle', ...body }).catch(() => {});
  }

  async detach(handle) {
    this.#handlers.delete(handle);
    if (this.#closed) return;
    await this.#post(`/${this.id}/${handle}`, { janus: 'detach' }).catch(() => {});
  }

  /** Leave Janus at once; `keepalive` lets it go out while the page unloads. */
  destroy({ keepalive = false } = {}) {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepalive);
    this.#polling.abort();
    if (this.id === null) return;
    const body = JSON.stringify({ janus: 'destroy', transaction: transactionId(), token: this.#token });
    fetch(`${this.#url}/${this.id}`, { method: 'POST', body, keepalive }).catch(() => {});
  }

  async #post(path, fields, transaction = transactionId()) {
    const body = { ...fields, transaction, token: this.#token };
    const response = await fetch(`${this.#url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (answer.janus === 'error') {
      throw new JanusError(answer.error?.code ?? 0, answer.error?.reason ?? 'unknown');
    }
    return answer;
  }

  async #poll() {
    while (!this.#closed) {
      let events;
      try {
        const query = new URLSearchParams({ maxev: '10', token: this.#token, rid: String(Date.now()) });
        const response = await fetch(`${this.#url}/${this.id}?${query}`, {
          signal: this.#polling.signal,
        });
        events = await response.json();
      } catch (error) {
        if (this.#closed) return;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      for (const event of Array.isArray(events) ? events : [events]) this.#dispatch(event);
    }
  }

  #dispatch(event) {
    if (this.#closed || !event) return;
    if (event.janus === 'error') {
      this.#lost(new JanusError(event.error?.code ?? 0, event.error?.reason ?? 'unknown'));
      return;
    }
    const waiter = event.transaction ? this.#waiting.get(event.transaction) : null;
    if (waiter && event.janus === 'event') {
      this.#waiting.delete(event.transaction);
      const data = event.plugindata?.data ?? {};
      if (data.error_code) waiter.reject(new JanusError(data.error_code, data.error));
      else waiter.resolve(event);
      return;
    }
    this.#handlers.get(event.sender)?.(event);
  }

  #lost(error) {
    if (this.#closed) return;
    if (error instanceof JanusError && SESSION_GONE.has(error.code)) {
      this.destroy();
      this.#onGone(error);
    }
  }
}

export class SfuCall {
  #roomId;
  #selfId;
  #grid;
  #config;
  #tracks;
  #stream;
  #registry;
  #trace;
  #notice;
  #simulcast;
  #grant = null;
  #janus = null;
  #publisher = null; // {handle, pc, senders: {audio, video}}
  #privateId = null;
  #feeds = new Map(); // Janus feed id → user id, as the server says
  #announced = new Set(); // feed ids Janus announced and has not said are gone
  #resolving = null; // the pending sfu-feeds request
  #resolveAgain = false;
  #resolveRetries = 0;
  #subscriptions = new Map(); // user id → {feed, handle, pc, stream}
  #members = new Set();
  #renewal = null;
  #closed = false;
  #onPageHide = () => this.#janus?.destroy({ keepalive: true });

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string} options.selfId
   * @param {import('./tiles.js').VideoGrid} options.grid
   * @param {() => Promise<RTCConfiguration>} options.config ICE servers (Janus may sit
   *   behind TURN), asked for each new connection: TURN credentials expire in long calls
   * @param {() => {kind: 'audio'|'video', track: MediaStreamTrack|null}[]} options.tracks
   * @param {MediaStream} options.stream
   * @param {{peers: Map, timings: object}} options.registry window.videochat
   * @param {(userId: string, event: string) => void} options.trace
   * @param {(key: string, text: string|null, kind?: string) => void} options.notice
   * @param {boolean} [options.simulcast]
   */
  constructor({ roomId, selfId, grid, config, tracks, stream, registry, trace, notice, simulcast = true }) {
    this.#roomId = roomId;
    this.#selfId = selfId;
    this.#grid = grid;
    this.#config = config;
    this.#tracks = tracks;
    this.#stream = stream;
    this.#registry = registry;
    this.#trace = trace;
    this.#notice = notice;
    this.#simulcast = simulcast;
    addEventListener('pagehide', this.#onPageHide);
  }

  /** Get a grant, join the VideoRoom and publish; retried while Janus is unavailable. */
  async start() {
    for (let attempt = 1; !this.#closed; attempt += 1) {
      try {
        await this.#join();
        this.#notice('sfu', null);
        return;
      } catch (error) {
        this.#trace('*', `sfu: could not join (${error.message})`);
        this.#teardown();
        const refused = error.status >= 400 && error.status < 500 && error.status !== 409;
        if (refused || attempt >= MAX_START_ATTEMPTS) {
          this.#notice('sfu', `Could not join the call: ${error.message}`, 'error');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  /** Who else is in the call: subscribe to their publications, drop the others'. */
  setMembers(members) {
    this.#members = new Set(members);
    for (const [userId] of [...this.#subscriptions]) {
      if (!this.#members.has(userId)) this.#unsubscribe(userId);
    }
    this.#subscribeAll();
  }

  /** As Peer.setTrack: the camera, screen or microphone changed (no renegotiation). */
  async setTrack(kind, track) {
    const sender = this.#publisher?.senders[kind];
    if (!sender) return;
    try {
      await sender.replaceTrack(track);
    } catch (error) {
      console.warn('videochat: replaceTrack on the SFU', error);
    }
  }

  /** [user id, connection] of every subscription, and ours (for audio levels). */
  connections() {
    const out = [...this.#subscriptions]
      .filter(([, subscription]) => subscription.pc)
      .map(([userId, subscription]) => [userId, subscription.pc]);
    if (this.#publisher) out.push([this.#selfId, this.#publisher.pc]);
    return out;
  }

  /** Janus forwards one quality per subscriber: no per-person budget to share. */
  capVideoBitrate() {}

  close() {
    if (this.#closed) return;
    this.#closed = true;
    removeEventListener('pagehide', this.#onPageHide);
    this.#teardown();
  }

  #teardown() {
    clearTimeout(this.#renewal);
    for (const userId of [...this.#subscriptions.keys()]) this.#unsubscribe(userId);
    this.#publisher?.pc.close();
    this.#publisher = null;
    if (this.#registry.sfu?.publisher) this.#registry.sfu.publisher = null;
    this.#janus?.destroy();
    this.#janus = null;
    this.#feeds.clear();
    this.#announced.clear();
    this.#resolveRetries = 0;
  }

  async #join() {
    const grant = await api.sfuGrant(this.#roomId);
    if (this.#closed) return;
    this.#grant = grant;
    this.#scheduleRenewal(grant.ttl_seconds);
    const janus = new JanusSession(grant.janus_url, grant.token, (error) => this.#gone(error));
    this.#janus = janus;
    await janus.create();
    const handle = await janus.attach((event) => this.#onPublisherEvent(event));
    // Only this handle may hold our publisher id: others' clients trust that, not `display`.
    await api.sfuHandle(this.#roomId, janus.id, handle);
    let joined;
    for (let attempt = 0; ; attempt += 1) {
      try {
        joined = await janus.message(handle, {
          request: 'join',
          ptype: 'publisher',
          room: grant.room,
          id: grant.publisher_id,
          display: this.#selfId,
          token: grant.token,
        });
        break;
      } catch (error) {
        // Our previous page (a reload) still holds the id until its session times out.
        if (error.code !== ID_TAKEN || attempt >= 30 || this.#closed) throw error;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
    if (this.#closed || this.#janus !== janus) return;
    const data = joined.plugindata.data;
    this.#privateId = data.private_id ?? null;
    this.#trace('*', `sfu: joined room ${grant.room} as ${data.id}`);
    this.#addFeeds(data.publishers);
    await this.#publish(handle);
  }

  async #publish(handle) {
    const janus = this.#janus;
    const config = await this.#config();
    if (this.#closed || this.#janus !== janus) return;
    const pc = new RTCPeerConnection(config);
    const senders = {};
    for (const { kind, track } of this.#tracks()) {
      const init = { direction: 'sendonly', streams: [this.#stream] };
      if (kind === 'video' && this.#simulcast) init.sendEncodings = SIMULCAST;
      senders[kind] = pc.addTransceiver(track ?? kind, init).sender;
    }
    this.#publisher = { handle, pc, senders };
    this.#registry.sfu = { ...this.#registry.sfu, publisher: pc, publishedAt: null };
    this.#trickle(pc, handle);
    pc.onconnectionstatechange = () => {
      this.#trace('*', `sfu: publisher ${pc.connectionState}`);
      if (pc.connectionState === 'connected') this.#registry.sfu.publishedAt ??= performance.now();
    };
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await janus.message(handle, { request: 'publish' }, pc.localDescription.toJSON());
    if (this.#closed || pc.signalingState === 'closed') return;
    await pc.setRemoteDescription(answer.jsep);
  }

  #trickle(pc, handle) {
    pc.onicecandidate = ({ candidate }) => {
      this.#janus?.trickle(handle, candidate ? candidate.toJSON() : null);
    };
  }

  #onPublisherEvent(event) {
    const data = event.plugindata?.data;
    if (event.janus === 'hangup') this.#trace('*', `sfu: publisher hung up (${event.reason})`);
    if (!data) return;
    if (data.publishers) this.#addFeeds(data.publishers);
    const gone = data.unpublished ?? data.leaving;
    if (gone === 'ok' && data.reason === 'kicked') {
      this.#trace('*', 'sfu: removed from the call');
      return;
    }
    if (gone !== undefined && gone !== 'ok') this.#removeFeed(gone);
  }

  #addFeeds(publishers = []) {
    let unknown = false;
    for (const publisher of publishers) {
      if (!Number.isSafeInteger(publisher.id) || publisher.id === this.#grant?.publisher_id) continue;
      this.#announced.add(publisher.id);
      // Asked anew even for a feed id we knew: its earlier holder may have left.
      this.#feeds.delete(publisher.id);
      unknown = true;
    }
    if (unknown) this.#resolveFeeds();
  }

  /** Ask the server whose the announced feeds are (one request at a time). */
  async #resolveFeeds() {
    if (this.#resolving) {
      this.#resolveAgain = true;
      return;
    }
    const janus = this.#janus;
    let failed = false;
    this.#resolving = api.sfuFeeds(this.#roomId);
    try {
      const { feeds } = await this.#resolving;
      // An answer about an earlier Janus session (we joined again meanwhile) is dropped.
      const fresh = !this.#closed && this.#janus === janus;
      for (const { feed, user_id: userId } of fresh ? feeds : []) {
        if (!this.#announced.has(feed) || userId === this.#selfId) continue;
        this.#feeds.set(feed, userId);
        // A later publication of the same person (a reload) replaces the earlier one.
        const current = this.#subscriptions.get(userId);
        if (current && current.feed !== feed) this.#unsubscribe(userId);
      }
    } catch (error) {
      failed = true;
      this.#trace('*', `sfu: whose feeds (${error.message})`);
    } finally {
      this.#resolving = null;
    }
    if (this.#closed) return;
    if (this.#resolveAgain) {
      this.#resolveAgain = false;
      this.#resolveFeeds();
      return;
    }
    if (this.#janus !== janus) return;
    this.#subscribeAll();
    // A feed the server did not name (the publisher is not yet visible to it): asked
    // again a few times; an impostor's is kicked meanwhile. A request that failed (the
    // server or Janus busy or away: a 503) is asked again for as long as it fails, or a
    // loaded moment would leave the call without pictures.
    const unnamed = [...this.#announced].some((feed) => !this.#feeds.has(feed));
    if (failed || (unnamed && this.#resolveRetries < MAX_RESOLVE_RETRIES)) {
      if (!failed) this.#resolveRetries += 1;
      setTimeout(() => {
        if (!this.#closed && this.#janus === janus) this.#resolveFeeds();
      }, RETRY_MS);
    } else if (!unnamed) {
      this.#resolveRetries = 0;
    }
  }

  #removeFeed(feed) {
    const userId = this.#feeds.get(feed);
    this.#feeds.delete(feed);
    this.#announced.delete(feed);
    if (userId && this.#subscriptions.get(userId)?.feed === feed) {
      this.#unsubscribe(userId);
      this.#grid.setStatus(userId, 'connecting');
    }
  }

  #subscribeAll() {
    if (!this.#janus?.id || !this.#grant) return;
    // The latest publication of each person in the call.
    const latest = new Map();
    for (const [feed, userId] of this.#feeds) latest.set(userId, feed);
    for (const [userId, feed] of latest) {
      if (this.#members.has(userId) && !this.#subscriptions.has(userId)) {
        this.#subscribe(userId, feed).catch((error) => {
          this.#trace(userId, `sfu: subscribing failed (${error.message})`);
          if (this.#subscriptions.get(userId)?.feed === feed) this.#unsubscribe(userId);
        });
      }
    }
  }

  async #subscribe(userId, feed) {
    const janus = this.#janus;
    const subscription = { feed, handle: null, pc: null, stream: new MediaStream() };
    this.#subscriptions.set(userId, subscription);
    const created = performance.now();
    this.#registry.timings[userId] = { ...this.#registry.timings[userId], created };
    this.#trace(userId, `sfu: subscribing to feed ${feed}`);
    subscription.handle = await janus.attach((event) => {
      if (event.janus === 'hangup') this.#trace(userId, `sfu: subscription hung up`);
    });
    if (this.#subscriptions.get(userId) !== subscription) {
      janus.detach(subscription.handle);
      return;
    }
    const attached = await janus.message(subscription.handle, {
      request: 'join',
      ptype: 'subscriber',
      room: this.#grant.room,
      streams: [{ feed }],
      ...(this.#privateId ? { private_id: this.#privateId } : {}),
      token: this.#grant.token,
    });
    const config = await this.#config();
    if (this.#subscriptions.get(userId) !== subscription) return;
    const pc = new RTCPeerConnection(config);
    subscription.pc = pc;
    this.#registry.peers.set(userId, pc);
    this.#trickle(pc, subscription.handle);
    pc.ontrack = ({ track }) => {
      subscription.stream.addTrack(track);
      // A new stream object each time, so the tile's video picks up every track.
      this.#grid.setRemoteStream(userId, new MediaStream(subscription.stream.getTracks()));
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      this.#trace(userId, `sfu: subscription ${state}`);
      if (state === 'connected') {
        this.#registry.timings[userId] = {
          ...this.#registry.timings[userId],
          connected: performance.now(),
        };
        this.#grid.setStatus(userId, 'connected');
      } else if (state === 'disconnected' || state === 'failed') {
        this.#grid.setStatus(userId, 'reconnecting');
      }
      if (state === 'failed' && this.#subscriptions.get(userId) === subscription) {
        // Subscribe afresh (Janus still has the publication, or tells us it is gone).
        this.#unsubscribe(userId);
        this.#subscribeAll();
      }
    };
    await pc.setRemoteDescription(attached.jsep);
    await pc.setLocalDescription(await pc.createAnswer());
    await janus.message(
      subscription.handle,
      { request: 'start' },
      pc.localDescription.toJSON(),
    );
  }

  #unsubscribe(userId) {
    const subscription = this.#subscriptions.get(userId);
    if (!subscription) return;
    this.#subscriptions.delete(userId);
    if (subscription.pc) {
      subscription.pc.onconnectionstatechange = subscription.pc.ontrack = null;
      subscription.pc.close();
      if (this.#registry.peers.get(userId) === subscription.pc) this.#registry.peers.delete(userId);
    }
    if (subscription.handle !== null) this.#janus?.detach(subscription.handle);
  }

  #scheduleRenewal(ttlSeconds) {
    clearTimeout(this.#renewal);
    const delay = Math.max(5, ttlSeconds / 2) * 1000;
    this.#renewal = setTimeout(async () => {
      try {
        const grant = await api.sfuGrant(this.#roomId);
        this.#scheduleRenewal(grant.ttl_seconds);
      } catch (error) {
        // Refused: we were removed (kick, ban); the room's socket says so too.
        this.#trace('*', `sfu: grant renewal failed (${error.message})`);
        if (!(error.status >= 400 && error.status < 500)) this.#scheduleRenewal(10);
      }
    }, delay);
  }

  #gone(error) {
    if (this.#closed) return;
    // The token was withdrawn or the session timed out (a sleeping laptop): start over,
    // with a new grant if we may still be in the call.
    this.#trace('*', `sfu: Janus session lost (${error.message}); joining again`);
    this.#teardown();
    setTimeout(() => {
      if (!this.#closed) this.start();
    }, RETRY_MS);
  }
}
