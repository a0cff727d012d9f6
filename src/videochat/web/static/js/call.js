// The call: our camera and microphone, and a full mesh of peer connections, one to
// every other person on video. Who is on video comes from the room's presence list
// (in the order people joined): the first `maxSize` people, so every page works out
// the same mesh without asking anyone.
//
// A person is in the call from one socket only: the `connection_id` the presence
// list gives for them, their latest. A second tab takes the call over (the first
// stays in the room for the chat, and gets the call back when the second closes);
// a reconnect's new socket replaces the old one. Every peer connection belongs to
// one remote socket, signals are addressed to it (`to_connection`), and when the
// presence list names another socket for someone, their peer connection is rebuilt.

import { api } from './api.js';
import { deviceOf, devicePrefs, saveDevicePrefs } from './devices.js';
import {
  canShareScreen,
  describeMediaError,
  openCamera,
  openMicrophone,
  openScreen,
  openUserMedia,
} from './media.js';
import { CONNECT_TIMEOUT_MS, Peer } from './peer.js';
import { SfuCall } from './sfu.js';
import { SpeakerDetector } from './speaker.js';

const DEFAULT_MAX_CALL_SIZE = 6;
// In a mesh our picture is encoded once per person: share an upload budget between
// them so a big call does not saturate a home connection.
const UPLOAD_BUDGET_BPS = 3_000_000;
const MIN_VIDEO_BPS = 250_000;
const MAX_VIDEO_BPS = 1_500_000;
// After this many fresh connections that never connected, say so and stop trying.
const MAX_FRESH_STARTS = 2;

export class Call {
  /** Whether we are on video (false while the call is full for us). */
  inCall = false;
  /** A moderator muted us: nothing may be turned on. */
  muted = false;
  maxSize = DEFAULT_MAX_CALL_SIZE;
  state = { audio: false, video: false, screen: false };
  ready = null;

  #roomId;
  #selfId;
  #selfName;
  #grid;
  #signal;
  #notices;
  #onChange;
  #onMembers;
  #registry;
  #config = { iceServers: [], iceTransportPolicy: 'all' };
  #configAt = 0;
  #configTtlMs = 10 * 60_000;
  // Our tracks under one stream id, so the other side sees them as one person.
  #stream = new MediaStream();
  #mic = null;
  #camera = null;
  #screen = null;
  #peers = new Map(); // user id → Peer
  #names = new Map(); // user id → name
  #sockets = new Map(); // user id → the connection id that is in the call for them
  // Our own socket's connection id (from `welcome`); null before it or on an old server.
  #connectionId = null;
  #stalls = new Map(); // user id → connections that stalled in a row
  // user id → since when we have been trying to connect (performance.now()); a
  // connection the other side starts over keeps the deadline of the one it replaces.
  #tryingSince = new Map();
  #queue = Promise.resolve();
  #ended = false;
  // Above a size the server puts the call on its SFU (presence's `call_mode`): then
  // sfu.js carries our media instead of a peer connection per person.
  #mode = 'mesh';
  #sfuMaxSize = null;
  #sfu = null;
  #speakers = null;

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {{id: string, username: string}} options.self
   * @param {import('./tiles.js').VideoGrid} options.grid
   * @param {(to: string, toConnection: string|null, data: object) => boolean} options.signal
   * @param {import('./ui.js').Notices} options.notices messages above the call
   * @param {() => void} options.onChange our media state or call membership changed
   * @param {(members: Set<string>) => void} options.onMembers who is on video
   * @param {{peers: Map<string, RTCPeerConnection>, timings: object}} options.registry
   *   what tests and debugging read (window.videochat)
   */
  constructor({ roomId, self, grid, signal, notices, onChange, onMembers, registry }) {
    this.#roomId = roomId;
    this.#selfId = self.id;
    this.#selfName = self.username;
    this.#grid = grid;
    this.#signal = signal;
    this.#notices = notices;
    this.#onChange = onChange;
    this.#onMembers = onMembers;
    this.#registry = registry;
  }

  /**
   * Get ICE servers and devices; everything that needs them waits for this. `media`
   * holds the tracks the pre-join screen opened; without it (a reload of a tab that
   * was in the call) the remembered devices are opened here.
   * @param {{audio: MediaStreamTrack|null, video: MediaStreamTrack|null,
   *   message: string|null}|null} [media]
   */
  start(media = null) {
    // Never rejects: everything queued behind it must still run (without media).
    this.ready = this.#start(media).catch((error) => {
      console.error('videochat: the call could not start', error);
      this.#notice('media', `The call could not start: ${error.message}`, 'error');
    });
    return this.ready;
  }

  get canShareScreen() {
    return canShareScreen();
  }

  /** What the others should believe about us: nothing is on while we wait outside a full call. */
  get publicState() {
    const on = this.inCall && !this.muted;
    return on ? { ...this.state } : { audio: false, video: false, screen: false };
  }

  /**
   * A moderator muted (or unmuted) us. The server refuses our chat and media state
   * meanwhile, but only we can stop our media reaching the others: turn it all off.
   */
  setMuted(muted) {
    if (this.muted === muted) return;
    this.muted = muted;
    if (muted) {
      if (this.#mic) this.#mic.enabled = false;
      this.state.audio = false;
      if (this.#camera) this.toggleCamera();
      this.#stopScreen();
    }
    this.#changed();
  }

  /**
   * Someone else was muted or unmuted: start our connection to them over, so it is
   * negotiated under their new standing. While they are muted the server relays their
   * side of it receive-only, so our browser accepts no media from them whatever theirs
   * sends; a connection negotiated before the mute would otherwise keep carrying it.
   */
  restartPeer(userId) {
    this.#enqueue(() => {
      if (!this.#peers.has(userId)) return;
      this.#trace(userId, 'muted or unmuted: starting the connection over');
      this.#dropPeer(userId, { keepTile: true });
      this.#ensurePeer(userId);
    });
  }

  /**
   * A presence list arrived: work out the mesh and connect or hang up to match it.
   * `call.mode` is "mesh" or "sfu" (undefined: unchanged), `call.maxSize` the SFU's limit.
   */
  setPresence(participants, call = {}) {
    this.#enqueue(() => {
      if (call.mode === 'mesh' || call.mode === 'sfu') this.#mode = call.mode;
      if (Number.isInteger(call.maxSize) && call.maxSize >= 2) this.#sfuMaxSize = call.maxSize;
      this.#applyPresence(participants);
    });
  }

  onSignal(from, fromConnection, data) {
    this.#enqueue(() => this.#applySignal(from, fromConnection, data));
  }

  /** The connection id of our socket (every (re)connect has a new one). */
  setConnection(connectionId) {
    this.#enqueue(() => {
      this.#connectionId = connectionId;
    });
  }

  onMediaState(frame) {
    this.#grid.setRemoteState(frame.user_id, frame);
  }

  /**
   * Our socket reconnected. The others may have seen us leave and dropped our
   * connections, and they will see our new socket in the call: start every
   * connection over; the presence list that follows the reconnect rebuilds the mesh
   * with everyone present.
   */
  resetPeers() {
    this.#enqueue(() => {
      this.#trace('*', 'socket reconnected: starting every connection over');
      for (const userId of [...this.#peers.keys()]) this.#dropPeer(userId, { keepTile: true });
    });
  }

  async toggleMic() {
    if (this.muted) return;
    if (this.#mic) {
      // Muting disables the track (silence is sent) rather than renegotiating.
      this.#mic.enabled = !this.#mic.enabled;
      this.state.audio = this.#mic.enabled;
    } else {
      try {
        this.#mic = await openMicrophone(devicePrefs().microphoneId);
      } catch (error) {
        this.#notice('mic', `Could not turn the microphone on: ${describeMediaError(error)}.`);
        return;
      }
      this.#notice('mic', null);
      this.#stream.addTrack(this.#mic);
      this.#forEachPeer((peer) => peer.setTrack('audio', this.#mic, this.#stream));
      this.state.audio = true;
    }
    this.#changed();
  }

  async toggleCamera() {
    if (this.#camera) {
      // Stop the camera for real (its light goes off); the others get no more frames
      // and show our avatar, told by the media_state frame.
      const track = this.#camera;
      this.#camera = null;
      this.#stream.removeTrack(track);
      if (!this.#screen) this.#forEachPeer((peer) => peer.setTrack('video', null, this.#stream));
      track.stop();
      this.state.video = false;
    } else {
      if (this.muted) return;
      let track;
      try {
        track = await openCamera(devicePrefs().cameraId);
      } catch (error) {
        this.#notice('camera', `Could not turn the camera on: ${describeMediaError(error)}.`);
        return;
      }
      if (this.#ended) {
        track.stop();
        return;
      }
      this.#notice('camera', null);
      this.#camera = track;
      this.#stream.addTrack(track);
      if (!this.#screen) this.#forEachPeer((peer) => peer.setTrack('video', track, this.#stream));
      this.state.video = true;
    }
    this.#changed();
  }

  async toggleScreen() {
    if (this.#screen) {
      this.#stopScreen();
      return;
    }
    if (this.muted) return;
    let track;
    try {
      track = await openScreen();
    } catch (error) {
      // Cancelling the browser's picker is a choice, not an error worth a message.
      if (error?.name !== 'NotAllowedError') {
        this.#notice('screen', `Could not share the screen: ${describeMediaError(error)}.`);
      }
      return;
    }
    if (this.#ended) {
      track.stop();
      return;
    }
    this.#notice('screen', null);
    this.#screen = track;
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => this.#stopScreen());
    // The screen takes the camera's place on the same sender: no renegotiation, and
    // everyone sees it in our tile.
    this.#forEachPeer((peer) => peer.setTrack('video', track, this.#stream));
    this.state.screen = true;
    this.#changed();
  }

  /** The devices in use now (for the device menu): ids, or null for a kind that is off. */
  get devices() {
    return { cameraId: deviceOf(this.#camera), microphoneId: deviceOf(this.#mic) };
  }

  /**
   * Use another camera or microphone (remembered for next time). A kind that is on
   * switches now: the new track replaces the old one on every connection
   * (RTCRtpSender.replaceTrack, no renegotiation); a kind that is off uses it when
   * turned on.
   */
  async useDevice(kind, deviceId) {
    saveDevicePrefs(kind === 'video' ? { cameraId: deviceId } : { microphoneId: deviceId });
    const old = kind === 'video' ? this.#camera : this.#mic;
    if (!old || deviceOf(old) === deviceId || this.muted) return;
    let track;
    try {
      track = await (kind === 'video' ? openCamera(deviceId) : openMicrophone(deviceId));
    } catch (error) {
      const what = kind === 'video' ? 'camera' : 'microphone';
      const key = kind === 'video' ? 'camera' : 'mic';
      this.#notice(key, `Could not switch the ${what}: ${describeMediaError(error)}.`);
      return;
    }
    const current = kind === 'video' ? this.#camera : this.#mic;
    if (this.#ended || current !== old) {
      track.stop(); // left, or turned off meanwhile
      return;
    }
    track.enabled = old.enabled; // a muted microphone stays muted
    this.#stream.removeTrack(old);
    this.#stream.addTrack(track);
    if (kind === 'video') {
      this.#camera = track;
      if (!this.#screen) this.#forEachPeer((peer) => peer.setTrack('video', track, this.#stream));
    } else {
      this.#mic = track;
      this.#forEachPeer((peer) => peer.setTrack('audio', track, this.#stream));
    }
    old.stop();
    this.#changed();
  }

  leave() {
    this.#ended = true;
    this.#sfu?.close();
    this.#sfu = null;
    this.#speakers?.stop();
    this.#speakers = null;
    for (const userId of [...this.#peers.keys()]) this.#dropPeer(userId);
    for (const track of [this.#mic, this.#camera, this.#screen]) track?.stop();
    this.#mic = this.#camera = this.#screen = null;
    this.#grid.clear();
  }

  async #start(given) {
    const asking = 'Waiting for permission to use the camera and microphone…';
    const waiting = given ? null : setTimeout(() => this.#notice('media', asking, 'info'), 1000);
    const [media] = await Promise.all([
      given ?? openUserMedia(devicePrefs()),
      this.#loadIceConfig(),
    ]);
    clearTimeout(waiting);
    if (this.#ended) {
      media.audio?.stop();
      media.video?.stop();
      return;
    }
    this.#notice('media', media.message);
    this.#mic = media.audio;
    this.#camera = media.video;
    for (const track of [this.#mic, this.#camera]) if (track) this.#stream.addTrack(track);
    this.state = { audio: Boolean(this.#mic), video: Boolean(this.#camera), screen: false };
    this.#speakers = new SpeakerDetector({
      selfId: this.#selfId,
      // On the SFU: its subscriptions (one per person) and our publication.
      peers: () =>
        this.#sfu?.connections() ?? [...this.#peers].map(([userId, peer]) => [userId, peer.pc]),
      selfAudible: () => this.inCall && this.state.audio && !this.muted,
      onSpeaker: (userId) => this.#grid.setSpeaker(userId),
    });
    this.#speakers.start();
    this.#changed();
  }

  async #loadIceConfig() {
    try {
      const body = await api.iceServers();
      if (body) {
        const servers = Array.isArray(body.ice_servers) ? body.ice_servers : [];
        this.#config = {
          iceServers: servers.filter((server) => server && server.urls),
          iceTransportPolicy: body.ice_transport_policy === 'relay' ? 'relay' : 'all',
        };
        if (Number.isInteger(body.max_call_size) && body.max_call_size >= 2) {
          this.maxSize = body.max_call_size;
        }
        if (Number.isFinite(body.ttl_seconds) && body.ttl_seconds > 0) {
          this.#configTtlMs = Math.max(60_000, (body.ttl_seconds * 1000) / 2);
        }
      }
    } catch (error) {
      // Without STUN/TURN, people on one network still connect with host candidates.
      console.warn('videochat: no ICE servers, going on without', error);
    }
    this.#configAt = Date.now();
  }

  /** The ICE configuration for a restart, refetched when TURN credentials may be old. */
  async #freshConfig() {
    if (Date.now() - this.#configAt > this.#configTtlMs) await this.#loadIceConfig();
    return this.#config;
  }

  // Presence and signals are handled one at a time, in arrival order, and only once
  // our own media is settled (a connection made without our tracks would need
  // renegotiating at once).
  #enqueue(task) {
    this.#queue = this.#queue
      .then(() => this.ready)
      .then(() => {
        if (!this.#ended) return task();
        return undefined;
      })
      .catch((error) => console.warn('videochat: call update failed', error));
  }

  #applyPresence(participants) {
    this.#sockets.clear();
    for (const person of participants) {
      this.#names.set(person.user_id, person.username);
      if (person.connection_id) this.#sockets.set(person.user_id, person.connection_id);
    }
    const limit = this.#mode === 'sfu' ? (this.#sfuMaxSize ?? this.maxSize) : this.maxSize;
    const members = participants.slice(0, limit);
    const memberIds = new Set(members.map((person) => person.user_id));
    const present = participants.some((person) => person.user_id === this.#selfId);
    const ourSocket = this.#sockets.get(this.#selfId);
    // Another tab of ours (a later one) has the call.
    const elsewhere =
      present && Boolean(ourSocket && this.#connectionId) && ourSocket !== this.#connectionId;
    const wasInCall = this.inCall;
    this.inCall = present && memberIds.has(this.#selfId) && !elsewhere;
    this.#onMembers(memberIds);

    this.#notice(
      'elsewhere',
      elsewhere
        ? 'You are in this call in another tab or window. This tab stays in the chat; ' +
            'it rejoins the call if you close the other one.'
        : null,
      'info',
    );
    if (elsewhere) {
      this.#notice('full', null);
    } else if (present && !this.inCall) {
      this.#notice(
        'full',
        `This call is full: at most ${limit} people can be on video together. ` +
          'You can still chat, and you will join the call when someone leaves.',
      );
    } else {
      this.#notice('full', null);
    }
    if (wasInCall !== this.inCall) this.#changed();

    const wanted = new Set(this.inCall ? [...memberIds].filter((id) => id !== this.#selfId) : []);
    this.#syncSfu(wanted);
    for (const [userId, peer] of [...this.#peers]) {
      if (!wanted.has(userId)) {
        this.#trace(userId, 'left the call');
        this.#dropPeer(userId);
      } else if (peer.remoteConnection && peer.remoteConnection !== this.#sockets.get(userId)) {
        // Their call moved to another socket (a reconnect, another tab): start over.
        this.#trace(userId, `now on socket ${this.#sockets.get(userId)?.slice(0, 4)}`);
        this.#dropPeer(userId, { keepTile: true });
      }
    }
    this.#grid.retain(wanted);
    for (const person of members) {
      if (!wanted.has(person.user_id)) continue;
      if (this.#sfu) this.#grid.ensureRemote(person.user_id, person.username);
      else this.#ensurePeer(person.user_id);
      this.#grid.setRemoteState(person.user_id, person);
    }
    this.#capBitrates();
  }

  /** On the SFU while we are in the call: one publication there, no peers of our own. */
  #syncSfu(wanted) {
    const onSfu = this.#mode === 'sfu' && this.inCall;
    if (onSfu && !this.#sfu) {
      this.#trace('*', 'the call is on the SFU now');
      for (const userId of [...this.#peers.keys()]) this.#dropPeer(userId, { keepTile: true });
      this.#sfu = new SfuCall({
        roomId: this.#roomId,
        selfId: this.#selfId,
        grid: this.#grid,
        config: () => this.#freshConfig(),
        tracks: () => [
          { kind: 'audio', track: this.#mic },
          { kind: 'video', track: this.#screen ?? this.#camera },
        ],
        stream: this.#stream,
        registry: this.#registry,
        trace: (userId, event) => this.#trace(userId, event),
        notice: (key, text, kind) => this.#notice(key, text, kind),
      });
      this.#sfu.start();
    } else if (!onSfu && this.#sfu) {
      this.#sfu.close();
      this.#sfu = null;
    }
    this.#sfu?.setMembers(wanted);
  }

  #capBitrates() {
    const share = UPLOAD_BUDGET_BPS / Math.max(1, this.#peers.size);
    const bitsPerSecond = Math.round(Math.min(MAX_VIDEO_BPS, Math.max(MIN_VIDEO_BPS, share)));
    this.#forEachPeer((peer) => peer.capVideoBitrate(bitsPerSecond));
  }

  #applySignal(from, fromConnection, data) {
    if (!this.inCall || this.#sfu || !data || typeof data !== 'object') {
      this.#trace(from, 'ignored a signal: not in the call');
      return;
    }
    if (!this.#names.has(from)) {
      this.#trace(from, 'ignored a signal from someone not in the presence list');
      return;
    }
    const theirSocket = this.#sockets.get(from);
    if (fromConnection && theirSocket && fromConnection !== theirSocket) {
      // From a tab of theirs that is not in the call (or a socket they replaced).
      this.#trace(from, `ignored a signal from socket ${fromConnection.slice(0, 4)}`);
      return;
    }
    let peer = this.#peers.get(from);
    if (peer?.remoteSession && data.session && data.session !== peer.remoteSession) {
      // A new connection id: the other side started over (reload, reconnect, a stall).
      // Its first signal is an offer or a hello; anything else is a leftover of the
      // old connection.
      if (data.description?.type !== 'offer' && !data.hello) {
        this.#trace(from, `dropped a signal of old connection ${data.session.slice(0, 4)}`);
        return;
      }
      this.#trace(from, `remote started over as ${data.session.slice(0, 4)}`);
      this.#dropPeer(from, { keepTile: true, keepNotice: true });
      peer = null;
    }
    peer ??= this.#ensurePeer(from);
    // Only a description or a hello names their connection: stray candidates of an old
    // one must not make its id ours (their next offer would look like a restart).
    if (data.description || data.hello) peer.remoteSession ??= data.session ?? null;
    peer.handle(data);
  }

  #ensurePeer(userId) {
    const existing = this.#peers.get(userId);
    if (existing) return existing;
    const name = this.#names.get(userId) ?? 'Someone';
    this.#grid.ensureRemote(userId, name);
    const now = performance.now();
    if (!this.#tryingSince.has(userId)) this.#tryingSince.set(userId, now);
    const connectWithinMs = Math.max(
      1000,
      CONNECT_TIMEOUT_MS - (now - this.#tryingSince.get(userId)),
    );
    // The socket this connection talks to, for as long as it lives.
    const remoteConnection = this.#sockets.get(userId) ?? null;
    let peer = null;
    peer = new Peer({
      connectWithinMs,
      // The larger user id is the polite one.
      polite: this.#selfId > userId,
      config: this.#config,
      tracks: [
        { kind: 'audio', track: this.#mic },
        { kind: 'video', track: this.#screen ?? this.#camera },
      ],
      stream: this.#stream,
      send: (data) => this.#signal(userId, remoteConnection, data),
      onTrack: (stream) => this.#grid.setRemoteStream(userId, stream),
      onStatus: (status) => this.#peerStatus(userId, peer, status),
      freshConfig: () => this.#freshConfig(),
      trace: (event) => this.#trace(userId, `${peer?.id.slice(0, 4)} ${event}`),
    });
    peer.remoteConnection = remoteConnection;
    this.#trace(
      userId,
      `${peer.id.slice(0, 4)} created (${peer.polite ? 'polite' : 'impolite'}) ` +
        `for socket ${remoteConnection?.slice(0, 4)}`,
    );
    this.#peers.set(userId, peer);
    this.#registry.peers.set(userId, peer.pc);
    this.#registry.timings[userId] = { created: peer.createdAt };
    return peer;
  }

  #dropPeer(userId, { keepTile = false, keepNotice = false } = {}) {
    const peer = this.#peers.get(userId);
    if (peer) {
      this.#peers.delete(userId);
      peer.close();
    }
    if (this.#registry.peers.get(userId) === peer?.pc) this.#registry.peers.delete(userId);
    if (!keepNotice) this.#notice(`peer:${userId}`, null);
    if (!keepTile) {
      this.#grid.removeRemote(userId);
      this.#stalls.delete(userId);
      this.#tryingSince.delete(userId);
    }
  }

  #peerStatus(userId, peer, status) {
    if (this.#peers.get(userId) !== peer) return; // a connection we already dropped
    this.#grid.setStatus(userId, status);
    const name = this.#names.get(userId) ?? 'someone';
    const key = `peer:${userId}`;
    const relay = peer.iceTransportPolicy === 'relay';
    const refused =
      peer.lastIceError?.code === 401 ? ' (the relay server refused our credentials)' : '';
    switch (status) {
      case 'connected':
        this.#registry.timings[userId] = {
          ...this.#registry.timings[userId],
          connected: peer.connectedAt,
        };
        this.#stalls.delete(userId);
        this.#tryingSince.delete(userId);
        this.#notice(key, null);
        this.#capBitrates(); // the video sender has its encodings now
        break;
      case 'reconnecting':
        // Keep a stall message up while we retry; otherwise say what is happening.
        if (!this.#notices.has(key)) {
          this.#notice(key, `Connection to ${name} lost, reconnecting…`, 'info');
        }
        break;
      case 'stalled': {
        // Not connected 15 s after starting (or restarting ICE). Start this connection
        // over from scratch a couple of times: the other side notices the new
        // connection id and starts over too.
        const stalls = (this.#stalls.get(userId) ?? 0) + 1;
        this.#stalls.set(userId, stalls);
        if (stalls > MAX_FRESH_STARTS) {
          this.#grid.setStatus(userId, 'failed');
          this.#notice(
            key,
            `Could not connect to ${name}${refused}. The network may block calls` +
              (relay
                ? ' and the relay (TURN) server is not reachable.'
                : '; a relay (TURN) server may be needed.'),
            'error',
          );
          break;
        }
        this.#notice(
          key,
          relay
            ? `Cannot reach ${name} through the relay (TURN) server${refused}. Still trying…`
            : `Still trying to connect to ${name}. A firewall may be blocking the call.`,
          'error',
        );
        this.#enqueue(() => {
          if (this.#peers.get(userId) !== peer) return;
          this.#trace(userId, 'stalled: starting over');
          this.#tryingSince.set(userId, performance.now()); // a full new window
          this.#dropPeer(userId, { keepTile: true, keepNotice: true });
          this.#ensurePeer(userId);
        });
        break;
      }
      default:
        break;
    }
  }

  #stopScreen() {
    const track = this.#screen;
    if (!track) return;
    this.#screen = null;
    this.#forEachPeer((peer) => peer.setTrack('video', this.#camera, this.#stream));
    track.stop();
    this.state.screen = false;
    this.#changed();
  }

  /** A short log of call events (window.videochat.trace) for debugging. */
  #trace(userId, event) {
    const trace = this.#registry.trace;
    if (!trace) return;
    trace.push(`${Math.round(performance.now())} ${userId.slice(0, 8)} ${event}`);
    if (trace.length > 300) trace.splice(0, trace.length - 300);
  }

  #notice(key, text, kind = 'warn') {
    this.#notices.set(key, text, kind);
  }

  #forEachPeer(action) {
    for (const peer of this.#peers.values()) action(peer);
    if (this.#sfu) action(this.#sfu);
  }

  #changed() {
    this.#grid.setLocal({
      userId: this.#selfId,
      name: this.#selfName,
      track: this.#screen ?? this.#camera,
      // A mirror feels natural for a face, but text on a shared screen must read right.
      mirrored: !this.#screen,
      state: this.state,
    });
    this.#onChange();
  }
}
