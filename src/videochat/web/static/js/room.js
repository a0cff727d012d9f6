// One visit to a room: the socket, the chat, the people list and the call, wired
// together. Entering a room joins its call; leaving tears everything down so the
// others see us go at once.

import { ApiError, api } from './api.js';
import { Call } from './call.js';
import { ChatPanel } from './chat.js';
import { LobbyPanel, waitForAdmission } from './knock.js';
import { ParticipantList } from './participants.js';
import { showRoomScreen } from './screens.js';
import { RoomSocket } from './socket.js';
import { VideoGrid } from './tiles.js';
import { Notices, byId, showView, toast } from './ui.js';

// Room ids are UUIDs: anything else in a link cannot be a room (no need to ask).
const ROOM_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  waiting: 'Connection lost, retrying…',
  'signed-out': 'Signed out',
  open: '',
};

export const roomPath = (roomId) => `/chat/rooms/${encodeURIComponent(roomId)}`;

/** What an `error` frame means to a person; null for ones not worth showing. */
function describeServerError(frame) {
  switch (frame.code) {
    case 'peer_not_found':
      return null; // a signal raced someone leaving: harmless
    case 'unknown_type':
      return `The server does not support that yet (${frame.message}).`;
    case 'rate_limited':
      return 'Slow down: too many messages at once.';
    default:
      return frame.message || 'The server refused that.';
  }
}

const isStatus = (error, status) => error instanceof ApiError && error.status === status;

export class RoomSession {
  #self;
  #invite;
  #registry;
  #onExit;
  #socket = null;
  #chat = null;
  #call = null;
  #callReady = false;
  #participants = null;
  #grid = null;
  #notices = new Notices(byId('call-notices'));
  #live = null;
  #videos = null;
  #abort = new AbortController();
  #left = false;
  #lobby = null;
  #name = '';

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string|null} options.invite an invite code from the link
   * @param {{id: string, username: string}} options.self
   * @param {{peers: Map, timings: object}} options.registry window.videochat
   * @param {(name: string) => void} options.onExit the person pressed Leave
   */
  constructor({ roomId, invite, self, registry, onExit }) {
    this.roomId = roomId;
    this.#invite = invite;
    this.#self = self;
    this.#registry = registry;
    this.#onExit = onExit;
  }

  async enter() {
    this.#registry.enteredAt = performance.now();
    this.#registry.timings = {};
    byId('room-title').textContent = 'Joining…';
    byId('invite').hidden = true;
    byId('room-private-badge').hidden = true;
    byId('chat-send').disabled = true;
    showView('room');

    const room = await this.#loadRoom();
    if (!room || this.#left) return;
    this.#name = room.name;
    byId('room-title').textContent = room.name;
    document.title = `${room.name} · videochat`;
    byId('room-private-badge').hidden = !room.is_private;
    if (room.invite_code) {
      const link = new URL(roomPath(room.id), location.origin);
      link.searchParams.set('invite', room.invite_code);
      byId('invite-link').value = link.href;
      byId('invite').hidden = false;
    }

    this.#grid = new VideoGrid(byId('video-grid'), {
      onFirstFrame: (userId) => {
        this.#registry.timings[userId] = {
          ...this.#registry.timings[userId],
          firstFrame: performance.now(),
        };
      },
      onAutoplayBlocked: () => {
        byId('unmute-all').hidden = false;
      },
    });
    this.#participants = new ParticipantList(
      byId('participant-list'),
      byId('people-count'),
      this.#self.id,
    );
    this.#call = new Call({
      roomId: this.roomId,
      self: this.#self,
      grid: this.#grid,
      signal: (to, toConnection, data) =>
        this.#socket?.send({ type: 'signal', to, to_connection: toConnection ?? undefined, data }) ??
        false,
      notices: this.#notices,
      onChange: () => this.#callChanged(),
      onMembers: (members) => this.#participants.setCallMembers(members),
      registry: this.#registry,
    });
    this.#bindControls();
    this.#renderControls();
    // The camera and microphone take longest (a permission prompt, maybe): start now.
    this.#call.start().then(() => {
      this.#callReady = true;
      this.#callChanged();
    });

    this.#mountLive();
    import('./videos.js').then(({ mountVideos }) => {
      if (!this.#left) this.#videos = mountVideos({ roomId: this.roomId, stage: byId('videos-slot') });
    }).catch((error) => console.warn('videochat: the videos panel is not available', error));

    const canModerate = await this.#canModerate(room);
    if (this.#left) return;
    this.#refreshMembers();
    this.#lobby = new LobbyPanel(this.roomId);
    if (canModerate && room.is_private) this.#lobby.enable();
    this.#chat = new ChatPanel({
      roomId: this.roomId,
      self: this.#self,
      canModerate,
      elements: {
        list: byId('message-list'),
        form: byId('chat-form'),
        input: byId('chat-input'),
        typing: byId('typing-indicator'),
        announcer: byId('chat-announcer'),
        older: byId('load-older'),
      },
      send: (frame) => this.#socket?.send(frame) ?? false,
    });

    try {
      await this.#chat.loadInitial();
    } catch (error) {
      toast(`Could not load the chat history: ${error.message}`, { kind: 'warn' });
    }
    if (this.#left) return;
    this.#socket = new RoomSocket({
      roomId: this.roomId,
      userId: this.#self.id,
      ticket: () => socketTicket(),
      since: () => this.#chat.lastId,
      onFrame: (frame) => this.#onFrame(frame),
      onOpen: ({ reconnect }) => this.#onOpen(reconnect),
      onStatus: (state) => {
        byId('connection-status').textContent = CONNECTION_TEXT[state] ?? '';
        // Sending needs the socket; typing does not (the text waits in the box).
        byId('chat-send').disabled = state !== 'open';
      },
      onRefused: () => this.#checkStillAllowed(),
      onRemoved: (reason) => this.#removed(reason),
    });
    this.#socket.start();
  }

  leave() {
    if (this.#left) return;
    this.#left = true;
    this.#abort.abort();
    this.#lobby?.disable();
    this.#lobby = null;
    this.#live?.destroy();
    this.#live = null;
    this.#videos?.destroy();
    this.#videos = null;
    this.#socket?.close();
    this.#call?.leave();
    this.#chat?.destroy();
    this.#participants?.clear();
    this.#notices.clear();
    this.#registry.peers.clear();
    byId('unmute-all').hidden = true;
    byId('invite').hidden = true;
    byId('connection-status').textContent = '';
    byId('chat-input').value = '';
    document.title = 'videochat';
  }

  async #loadRoom() {
    let room;
    try {
      if (this.#invite) {
        await api.joinRoom(this.roomId, this.#invite);
        // The invite did its work; the address bar shows the plain room address.
        history.replaceState(history.state, '', roomPath(this.roomId));
      }
      room = await api.room(this.roomId);
    } catch (error) {
      if (this.#left) return null;
      if (isStatus(error, 404) && !this.#invite) return this.#knock();
      if (isStatus(error, 404)) showRoomScreen('not-found');
      else if (isStatus(error, 403) && /banned/i.test(error.message)) showRoomScreen('banned');
      else if (isStatus(error, 403)) showRoomScreen('invite');
      else if (isStatus(error, 409)) showRoomScreen('full', { text: error.message });
      else showRoomScreen('error', { text: `Could not open the room: ${error.message}` });
      return null;
    }
    // A public room we are not in yet: join now, before the camera starts, so a ban
    // or a full room is a clear screen rather than a socket that never opens.
    if (!room.is_private && !(room.users ?? []).includes(this.#self.id)) {
      const refusal = await this.#joinPublic();
      if (refusal || this.#left) return null;
    }
    return room;
  }

  /** POST /join for a public room; true when refused (a screen says why). */
  async #joinPublic() {
    try {
      await api.joinRoom(this.roomId);
      return false;
    } catch (error) {
      if (this.#left) return true;
      if (isStatus(error, 403)) showRoomScreen('banned');
      else if (isStatus(error, 404)) showRoomScreen('gone');
      else if (isStatus(error, 409)) showRoomScreen('full', { text: error.message });
      else return false; // offline for a moment: the socket retries and says so
      return true;
    }
  }

  /**
   * A room we may not see: not a room id at all (not found), or perhaps a private
   * room — knock, and come in once a moderator admits us.
   */
  async #knock() {
    if (!ROOM_ID.test(this.roomId)) {
      showRoomScreen('not-found');
      return null;
    }
    const outcome = await waitForAdmission(this.roomId, this.#abort.signal);
    if (this.#left) return null;
    if (outcome === 'not-found') showRoomScreen('not-found');
    if (outcome === 'banned') showRoomScreen('banned');
    if (outcome !== true) return null;
    showView('room');
    try {
      return await api.room(this.roomId);
    } catch (again) {
      showRoomScreen('error', { text: again.message });
      return null;
    }
  }

  /**
   * The live-streaming panel (live.js: go live over WHIP, watch the room's streams).
   * Loaded on its own, so that a problem there cannot stop the room from working.
   */
  async #mountLive() {
    try {
      const { mountLive } = await import('./live.js');
      if (this.#left) return;
      this.#live = mountLive({ roomId: this.roomId, self: this.#self, stage: byId('live-slot') });
    } catch (error) {
      console.warn('videochat: live streaming is not available', error);
    }
  }

  /** Owners and moderators may delete anyone's messages. */
  async #canModerate(room) {
    if (room.owner_id === this.#self.id) return true;
    try {
      const members = await api.members(this.roomId);
      const me = members.find((member) => member.user_id === this.#self.id);
      return me?.role === 'moderator' || me?.role === 'owner';
    } catch {
      return false; // only a convenience: the server decides anyway
    }
  }

  /** Roles and mutes for the People list (its moderation actions). */
  async #refreshMembers() {
    let members;
    try {
      members = await api.members(this.roomId);
    } catch {
      return; // the list keeps what it had; the server decides anyway
    }
    if (this.#left) return;
    this.#participants.setMembers(members, (userId, action) => this.#moderate(userId, action));
  }

  /** A moderation action from the People list; the server announces the outcome. */
  async #moderate(userId, action) {
    try {
      if (action === 'promote' || action === 'demote') {
        await api.setRole(this.roomId, userId, action === 'promote' ? 'moderator' : 'member');
      } else {
        await api.moderate(this.roomId, userId, action);
      }
    } catch (error) {
      toast(error.message, { kind: 'warn' });
    }
    this.#refreshMembers();
  }

  /**
   * Handshakes keep failing (the browser hides the 403): ask the HTTP API whether the
   * room is still there for us, and stop with a screen instead of retrying for ever.
   */
  async #checkStillAllowed() {
    let room;
    try {
      room = await api.room(this.roomId);
    } catch (error) {
      if (this.#left || !isStatus(error, 404)) return; // offline: keep retrying
      this.leave();
      showRoomScreen('gone');
      return;
    }
    if (this.#left || room.is_private || (room.users ?? []).includes(this.#self.id)) return;
    // A public room that no longer counts us in: banned, or full.
    try {
      await api.joinRoom(this.roomId);
    } catch (error) {
      if (this.#left || !(isStatus(error, 403) || isStatus(error, 409))) return;
      this.leave();
      if (isStatus(error, 403)) showRoomScreen('banned');
      else showRoomScreen('full', { text: error.message });
    }
  }

  #onOpen(reconnect) {
    if (reconnect) {
      this.#call.resetPeers();
      this.#chat.reconcile();
    }
    // Media state lives with the connection on the server: tell it again.
    this.#publishMedia();
  }

  #onFrame(frame) {
    switch (frame.type) {
      case 'welcome':
        // Which of our tabs this socket is: the call follows our latest one.
        this.#call.setConnection(frame.connection_id ?? null);
        break;
      case 'message':
        this.#chat.receive(frame);
        break;
      case 'message_edited':
        this.#chat.applyEdit(frame);
        break;
      case 'message_deleted':
        this.#chat.applyDelete(frame);
        break;
      case 'reaction':
        this.#chat.applyReaction(frame);
        break;
      case 'typing':
        this.#chat.showTyping(frame);
        break;
      case 'presence':
        this.#participants.render(frame.participants ?? []);
        // Someone new: their role (and the actions on them) comes from GET /members.
        if (this.#participants.hasUnknown()) this.#refreshMembers();
        // `call_mode` (and the SFU's `max_call_size`): absent on a server without an SFU.
        this.#call.setPresence(frame.participants ?? [], {
          mode: frame.call_mode,
          maxSize: frame.max_call_size,
        });
        break;
      case 'media_state':
        this.#participants.updateMedia(frame.user_id, frame);
        this.#call.onMediaState(frame);
        break;
      case 'signal':
        this.#call.onSignal(frame.from, frame.from_connection ?? null, frame.data);
        break;
      case 'user_joined':
        if (frame.user_id !== this.#self.id) this.#chat.announce(`${frame.username} joined`);
        break;
      case 'user_left':
        this.#chat.forget(frame.user_id);
        this.#chat.announce(`${frame.username} left`);
        break;
      case 'moderation':
        this.#onModeration(frame);
        break;
      case 'lobby':
        this.#lobby?.onFrame(frame);
        break;
      case 'live_started':
      case 'live_ended':
        this.#live?.onFrame(frame);
        break;
      case 'video_status':
        this.#videos?.onFrame(frame);
        break;
      case 'error': {
        // Refused because a moderator muted us (perhaps before we came in).
        if (frame.code === 'muted') {
          this.#setMuted(true);
          break;
        }
        const text = describeServerError(frame);
        if (text) toast(text, { kind: 'warn' });
        break;
      }
      default:
        break; // pong, and frame types this client does not know yet
    }
  }

  #onModeration(frame) {
    const mine = frame.user_id === this.#self.id;
    this.#refreshMembers();
    switch (frame.action) {
      case 'mute':
      case 'unmute':
        if (mine) this.#setMuted(frame.action === 'mute');
        else this.#call.restartPeer(frame.user_id);
        break;
      case 'promote':
      case 'demote':
        if (mine) this.#chat.setCanModerate(frame.action === 'promote');
        if (mine && frame.action === 'promote') this.#lobby?.enable();
        if (mine && frame.action === 'demote') this.#lobby?.disable();
        break;
      case 'kick':
      case 'ban':
        // The server also closes our socket (4003); the frame comes first, and acting on
        // it means no reconnect can slip in between (a public room would take us back).
        if (mine) this.#removed(frame.action === 'ban' ? 'banned' : 'kicked');
        break;
      default:
        break;
    }
  }

  #setMuted(muted) {
    this.#call.setMuted(muted);
    this.#notices.set(
      'moderation',
      muted
        ? 'A moderator muted you: your microphone, camera and screen are off and you cannot chat.'
        : null,
    );
    this.#renderControls();
  }

  /** Kicked or banned (close code 4003): leave, and say why instead of coming back. */
  #removed(reason) {
    this.leave();
    showRoomScreen(/banned/i.test(reason ?? '') ? 'banned' : 'kicked');
  }

  #bindControls() {
    const on = { signal: this.#abort.signal };
    byId('toggle-mic').addEventListener('click', () => this.#call.toggleMic(), on);
    byId('toggle-camera').addEventListener('click', () => this.#call.toggleCamera(), on);
    byId('share-screen').addEventListener('click', () => this.#call.toggleScreen(), on);
    byId('leave-call').addEventListener('click', () => this.#onExit(this.#name), on);
    byId('unmute-all').addEventListener(
      'click',
      () => {
        this.#grid.unmuteAll();
        byId('unmute-all').hidden = true;
      },
      on,
    );
    byId('copy-invite').addEventListener(
      'click',
      async () => {
        const field = byId('invite-link');
        try {
          await navigator.clipboard.writeText(field.value);
          toast('Invite link copied.');
        } catch {
          field.select(); // no clipboard access: leave it selected for Ctrl+C
        }
      },
      on,
    );
  }

  #callChanged() {
    this.#renderControls();
    this.#publishMedia();
  }

  #renderControls() {
    const state = this.#call.state;
    const ready = this.#callReady;
    const mic = byId('toggle-mic');
    const camera = byId('toggle-camera');
    const screen = byId('share-screen');
    mic.setAttribute('aria-pressed', String(state.audio));
    camera.setAttribute('aria-pressed', String(state.video));
    screen.setAttribute('aria-pressed', String(state.screen));
    const muted = this.#call.muted;
    mic.disabled = camera.disabled = !ready || muted;
    screen.disabled = !ready || muted || !this.#call.canShareScreen;
    screen.title = this.#call.canShareScreen ? '' : 'This browser cannot share a screen';
  }

  #publishMedia() {
    if (!this.#callReady) return;
    this.#socket?.send({ type: 'media_state', ...this.#call.publicState });
  }
}

/** A one-time ticket for the room socket; null once the session has ended. */
async function socketTicket() {
  try {
    return (await api.socketTicket()).ticket;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}
