// One RTCPeerConnection to one other person, negotiated with the "perfect
// negotiation" pattern: either side offers whenever it needs to (a new track, an ICE
// restart); when two offers cross, the polite side lets its own go (implicit
// rollback) and answers, and the impolite side ignores the incoming one. Politeness
// comes from comparing user ids, so both ends agree without talking about it.
//
// One refinement: the polite side holds its *first* offer back for a moment and
// says hello instead, so a new connection normally starts with a single offer.
// Crossing first offers were the common glare, and in Chromium a rollback during
// the first ICE gathering sometimes left a connection with no candidates at all.
// The same goes for ICE restarts: the impolite side restarts, the polite one
// only if that did not happen.

export const CONNECT_TIMEOUT_MS = 15_000;
// "disconnected" often heals by itself (a Wi-Fi hiccup); give it a moment first.
const DISCONNECTED_GRACE_MS = 4_000;
// How long the polite side waits for the other side's offer or restart.
const POLITE_DELAY_MS = 2_500;
const MAX_RESTARTS = 3;
// Candidates come in bursts; a short wait sends a burst as one frame, which keeps
// us well inside the server's per-connection frame budget in a big call.
const CANDIDATE_BATCH_MS = 25;

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => n.toString(16)).join('-');
}

export class Peer {
  /** Names this connection in every signal, so the other side notices when we start over. */
  id = randomId();
  /** The other side's connection id, learnt from its first signal. */
  remoteSession = null;
  /** The other side's socket (its `connection_id` on the server), set by the call. */
  remoteConnection = null;
  senders = { audio: null, video: null };
  status = 'new';
  lastIceError = null;
  createdAt = performance.now();
  connectedAt = null;

  #polite;
  #send;
  #onTrack;
  #onStatus;
  #freshConfig;
  #trace;
  #makingOffer = false;
  #ignoreOffer = false;
  #firstOfferTimer = null;
  #chain = Promise.resolve();
  #outbox = [];
  #outboxTimer = null;
  #watchdog = null;
  #restartTimer = null;
  #restarts = 0;
  #closed = false;
  #fallbackStream = new MediaStream();

  /**
   * @param {object} options
   * @param {boolean} options.polite
   * @param {RTCConfiguration} options.config
   * @param {{kind: 'audio'|'video', track: MediaStreamTrack|null}[]} options.tracks
   * @param {MediaStream} options.stream groups our tracks under one id for the other side
   * @param {(data: object) => void} options.send signalling to the other person
   * @param {(stream: MediaStream) => void} options.onTrack
   * @param {(status: string) => void} options.onStatus connecting, connected,
   *   reconnecting, or stalled (not connected 15 s after starting or restarting)
   * @param {() => Promise<RTCConfiguration|null>} options.freshConfig for ICE restarts
   * @param {(event: string) => void} [options.trace] a debugging log of what happened
   * @param {number} [options.connectWithinMs] when to call the connection stalled
   */
  constructor({
    polite,
    config,
    tracks,
    stream,
    send,
    onTrack,
    onStatus,
    freshConfig,
    trace,
    connectWithinMs = CONNECT_TIMEOUT_MS,
  }) {
    this.#polite = polite;
    this.#send = send;
    this.#onTrack = onTrack;
    this.#onStatus = onStatus;
    this.#freshConfig = freshConfig;
    this.#trace = trace ?? (() => {});
    this.iceTransportPolicy = config.iceTransportPolicy ?? 'all';

    const pc = new RTCPeerConnection(config);
    this.pc = pc;
    let sending = false;
    for (const { kind, track } of tracks) {
      if (!track) continue;
      this.senders[kind] = pc.addTrack(track, stream);
      sending = true;
    }
    // With nothing to send nothing would start a negotiation, yet a connection
    // must be negotiated even then: a data channel does it.
    if (!sending) pc.createDataChannel('hello');

    pc.onnegotiationneeded = () => this.#offer();
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.#queueCandidate(candidate.toJSON());
    };
    pc.ontrack = ({ track, streams }) => {
      let remote = streams[0];
      if (!remote) {
        remote = this.#fallbackStream;
        remote.addTrack(track);
      }
      this.#onTrack(remote);
    };
    pc.onconnectionstatechange = () => this.#onConnectionState();
    pc.onsignalingstatechange = () => this.#trace(`signaling ${pc.signalingState}`);
    pc.onicegatheringstatechange = () => this.#trace(`gathering ${pc.iceGatheringState}`);
    pc.onicecandidateerror = (event) => {
      // 401 here means the TURN credentials were refused; kept for the failure message.
      this.lastIceError = { code: event.errorCode, text: event.errorText, url: event.url };
    };
    this.#armWatchdog(connectWithinMs);
    // Tell the other side this connection exists: if it still holds an older one of
    // ours, it starts over and offers to this one.
    if (polite) this.#send({ session: this.id, hello: true });
  }

  get polite() {
    return this.#polite;
  }

  /** Handle one signal from the other side, strictly in arrival order. */
  handle(data) {
    this.#chain = this.#chain
      .then(() => this.#handle(data))
      .catch((error) => console.warn('videochat: signal failed', error));
    return this.#chain;
  }

  /**
   * Send `track` (or nothing) as our audio or video. An existing sender swaps its track
   * without renegotiating; a first track of a kind is added, which renegotiates.
   */
  async setTrack(kind, track, stream) {
    if (this.#closed) return;
    const sender = this.senders[kind];
    if (sender) {
      try {
        await sender.replaceTrack(track);
      } catch (error) {
        console.warn('videochat: replaceTrack', error);
      }
    } else if (track) {
      this.senders[kind] = this.pc.addTrack(track, stream);
    }
  }

  /** Cap what we send of our picture (bits per second); a no-op before negotiation. */
  async capVideoBitrate(bitsPerSecond) {
    const sender = this.senders.video;
    if (this.#closed || !sender) return;
    try {
      const parameters = sender.getParameters();
      if (!parameters.encodings?.length) return;
      if (parameters.encodings[0].maxBitrate === bitsPerSecond) return;
      parameters.encodings[0].maxBitrate = bitsPerSecond;
      await sender.setParameters(parameters);
    } catch (error) {
      console.warn('videochat: could not cap the bitrate', error);
    }
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#watchdog);
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#outboxTimer);
    clearTimeout(this.#firstOfferTimer);
    const pc = this.pc;
    pc.onnegotiationneeded = pc.onicecandidate = pc.ontrack = null;
    pc.onconnectionstatechange = pc.onicecandidateerror = null;
    pc.onsignalingstatechange = pc.onicegatheringstatechange = null;
    pc.close();
  }

  async #offer() {
    if (this.#closed) return;
    if (this.#polite && !this.pc.remoteDescription) {
      // Leave the first offer to the impolite side; offer only if none comes.
      this.#firstOfferTimer ??= setTimeout(() => {
        if (!this.pc.remoteDescription && this.pc.signalingState === 'stable') {
          this.#trace('no offer came: offering');
          this.#makeOffer();
        }
      }, POLITE_DELAY_MS);
      return;
    }
    await this.#makeOffer();
  }

  async #makeOffer() {
    if (this.#closed) return;
    try {
      this.#makingOffer = true;
      await this.pc.setLocalDescription();
      this.#sendDescription();
    } catch (error) {
      console.warn('videochat: offer failed', error);
    } finally {
      this.#makingOffer = false;
    }
  }

  async #handle(data) {
    if (this.#closed) return;
    const { description } = data;
    if (description) {
      const collision =
        description.type === 'offer' && (this.#makingOffer || this.pc.signalingState !== 'stable');
      this.#ignoreOffer = !this.#polite && collision;
      const note = this.#ignoreOffer ? ' (collision), ignored' : collision ? ' (collision)' : '';
      this.#trace(`got ${description.type}${note}`);
      if (this.#ignoreOffer) return;
      // On a collision this rolls our own offer back first (implicit rollback).
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        await this.pc.setLocalDescription();
        this.#sendDescription();
      }
      return;
    }
    if (!Array.isArray(data.candidates) && !data.candidate) return; // a hello
    if (!this.pc.remoteDescription) {
      // The other side sends a description before its candidates, so these belong to
      // an offer we ignored or to a connection of theirs that is gone (a CI run saw
      // one reach a fresh connection): nothing can use them.
      this.#trace('dropped candidates: no description of theirs yet');
      return;
    }
    const candidates = Array.isArray(data.candidates) ? data.candidates : [data.candidate];
    for (const candidate of candidates) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (error) {
        // Candidates of an offer we ignored are expected to fail.
        if (!this.#ignoreOffer) console.warn('videochat: bad candidate', error);
      }
    }
  }

  #sendDescription() {
    // Candidates still waiting belong to the previous description: send them first.
    this.#flushCandidates();
    this.#trace(`sent ${this.pc.localDescription.type}`);
    this.#send({ session: this.id, description: this.pc.localDescription.toJSON() });
  }

  #queueCandidate(candidate) {
    this.#outbox.push(candidate);
    this.#outboxTimer ??= setTimeout(() => this.#flushCandidates(), CANDIDATE_BATCH_MS);
  }

  #flushCandidates() {
    clearTimeout(this.#outboxTimer);
    this.#outboxTimer = null;
    if (this.#closed || this.#outbox.length === 0) return;
    const candidates = this.#outbox;
    this.#outbox = [];
    this.#send({ session: this.id, candidates });
  }

  #onConnectionState() {
    const state = this.pc.connectionState;
    this.#trace(`connection ${state}`);
    clearTimeout(this.#restartTimer);
    switch (state) {
      case 'connected':
        clearTimeout(this.#watchdog);
        this.#restarts = 0;
        this.connectedAt ??= performance.now();
        this.#setStatus('connected');
        break;
      case 'connecting':
        if (this.status !== 'reconnecting') this.#setStatus('connecting');
        break;
      case 'disconnected':
        this.#setStatus('reconnecting');
        this.#scheduleRestart(DISCONNECTED_GRACE_MS);
        break;
      case 'failed':
        this.#setStatus('reconnecting');
        this.#scheduleRestart(0);
        break;
      default:
        break;
    }
  }

  #scheduleRestart(delay) {
    // Both sides see the failure; the impolite one restarts, the polite one waits.
    const wait = delay + (this.#polite ? POLITE_DELAY_MS : 0);
    this.#restartTimer = setTimeout(() => {
      const state = this.pc.connectionState;
      if (state === 'disconnected' || state === 'failed') this.#restartIce();
    }, wait);
  }

  /** ICE restart, with fresh ICE servers (TURN credentials expire). */
  async #restartIce() {
    if (this.#closed || this.#restarts >= MAX_RESTARTS) return;
    this.#restarts += 1;
    this.#trace('ICE restart');
    try {
      const config = await this.#freshConfig();
      if (config && !this.#closed) this.pc.setConfiguration(config);
    } catch (error) {
      console.warn('videochat: could not refresh ICE servers', error);
    }
    if (this.#closed) return;
    this.pc.restartIce();
    this.#armWatchdog();
  }

  // "failed" is not the only way to fail: with a relay-only policy and TURN
  // credentials the server refuses, the connection stays "new" for ever.
  #armWatchdog(within = CONNECT_TIMEOUT_MS) {
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => {
      if (this.#closed || this.pc.connectionState === 'connected') return;
      this.#setStatus('stalled');
    }, within);
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.#onStatus(status);
  }
}
