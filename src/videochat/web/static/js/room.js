// One visit to a room: the socket, the chat, the people list and the call, wired
// together. Entering a room shows the pre-join screen first (a tab that already
// joined goes straight back in on a reload); Join starts the call, the chat and the
// socket; leaving tears everything down so the others see us go at once.

import { ApiError, NewestAnswer, api } from './api.js';
import { Call } from './call.js';
import { ChatPanel } from './chat.js';
import {
  devicePrefs,
  fillDeviceSelect,
  joinedHere,
  listDevices,
  rememberJoined,
} from './devices.js';
import { LobbyPanel, waitForAdmission } from './knock.js';
import { ParticipantList } from './participants.js';
import { PreJoin, showJoining } from './prejoin.js';
import { RecordingControl } from './recording.js';
import { showRoomScreen } from './screens.js';
import { RoomSocket } from './socket.js';
import { VideoGrid } from './tiles.js';
import { Notices, byId, displayName, forgetNames, showView, toast } from './ui.js';

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
const libraryPath = (roomId, videoId) =>
  `${roomPath(roomId)}/videos${videoId ? `/${encodeURIComponent(videoId)}` : ''}`;
const RANK = { owner: 3, moderator: 2, member: 1 };

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

// Phones get one panel at a time (the call, the chat or the people) above a fixed bar.
const PHONE = '(max-width: 820px)';
const COPIED_SHOWN_MS = 3000;

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
  #recording = null;
  #abort = new AbortController();
  #left = false;
  #lobby = null;
  #name = '';
  #prejoin = null;
  #panel = null; // on phones: null (the call), 'chat' or 'people'
  #unread = 0;
  #copiedTimer = null;
  #roles = new Map(); // user id -> role, from GET /members
  #memberListings = new NewestAnswer(); // GET /members, asked at frames and actions
  #ownerId = null;
  #view = { tab: 'call', videoId: null };

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string|null} options.invite an invite code from the link
   * @param {{id: string, username: string}} options.self
   * @param {{peers: Map, timings: object}} options.registry window.videochat
   * @param {(name: string) => void} options.onExit the person pressed Leave
   * @param {{tab: string, videoId: string|null}} [options.view] the call, or the library
   */
  constructor({ roomId, invite, self, registry, onExit, view }) {
    this.roomId = roomId;
    this.#invite = invite;
    this.#self = self;
    this.#registry = registry;
    this.#onExit = onExit;
    if (view) this.#view = view;
  }

  /**
   * Show the call or the video library in the main area (both have addresses:
   * /chat/rooms/{id} and /chat/rooms/{id}/videos[/{video_id}]). The call goes on
   * either way: its tiles are only hidden.
   */
  showTab({ tab, videoId = null }) {
    this.#view = { tab, videoId };
    const library = tab === 'videos';
    byId('video-grid').hidden = library;
    byId('library').hidden = !library;
    for (const [id, on] of [['tab-call', !library], ['tab-videos', library]]) {
      const link = byId(id);
      if (on) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (library) this.#videos?.open(videoId);
    else this.#videos?.open(null);
  }

  /** Whether we may rename and delete videos of this uploader (the server decides too). */
  #mayManageVideo(uploaderId) {
    const me = this.#self.id;
    if (uploaderId === me) return true;
    const mine = this.#ownerId === me ? 'owner' : this.#roles.get(me);
    if (mine === 'owner') return true;
    if (mine !== 'moderator') return false;
    const theirs = uploaderId === this.#ownerId ? 'owner' : this.#roles.get(uploaderId);
    return !theirs || RANK[theirs] < RANK[mine];
  }

  async enter() {
    // A reload of the tab that pressed Join goes straight back into the call.
    const rejoining = joinedHere(this.roomId);
    forgetNames(); // namesakes are counted per room
    byId('room-title').textContent = 'Joining…';
    byId('invite').hidden = true;
    byId('copy-link').hidden = true;
    byId('room-private-badge').hidden = true;
    byId('chat-send').disabled = true;
    byId('tab-call').href = roomPath(this.roomId);
    byId('tab-videos').href = libraryPath(this.roomId);
    this.#showPanel(null);
    if (rejoining) {
      showView('room');
      this.showTab(this.#view);
    } else {
      showJoining();
    }

    const room = await this.#loadRoom();
    if (!room || this.#left) return;
    this.#name = room.name;
    this.#ownerId = room.owner_id ?? null;
    document.title = `${room.name} · videochat`;
    let media = null;
    if (!rejoining) {
      this.#prejoin = new PreJoin({ roomName: room.name, self: this.#self });
      media = await this.#prejoin.run();
      this.#prejoin = null;
      if (!media || this.#left) return;
      rememberJoined(this.roomId);
      showView('room');
      this.showTab(this.#view);
    }
    this.#registry.enteredAt = performance.now();
    this.#registry.timings = {};
    byId('room-title').textContent = room.name;
    byId('room-private-badge').hidden = !room.is_private;
    if (room.invite_code) {
      const link = new URL(roomPath(room.id), location.origin);
      link.searchParams.set('invite', room.invite_code);
      byId('invite-link').value = link.href;
      byId('invite').hidden = false;
    } else if (!room.is_private) {
      byId('copy-link').hidden = false; // a public room's address is its link
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
    this.#recording = new RecordingControl({
      roomId: this.roomId,
      indicator: byId('recording-indicator'),
      button: byId('record-toggle'),
      announcer: byId('recording-announcer'),
    });
    this.#bindControls();
    this.#renderControls();
    // The camera and microphone take longest (a permission prompt, maybe): start now.
    this.#call.start(media).then(() => {
      this.#callReady = true;
      this.#callChanged();
    });

    this.#mountLive();
    import('./videos.js').then(({ mountVideos }) => {
      if (this.#left) return;
      this.#videos = mountVideos({
        roomId: this.roomId,
        self: this.#self,
        root: byId('library'),
        mayManage: (uploaderId) => this.#mayManageVideo(uploaderId),
      });
      this.showTab(this.#view);
    }).catch((error) => console.warn('videochat: the video library is not available', error));

    const canModerate = await this.#canModerate(room);
    if (this.#left) return;
    this.#recording.setAllowed(canModerate);
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
        refusal: byId('chat-refusal'),
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
    this.#prejoin?.cancel();
    this.#prejoin = null;
    clearTimeout(this.#copiedTimer);
    byId('copy-status').textContent = '';
    byId('copy-link').hidden = true;
    this.#showPanel(null);
    this.#showDevices(false);
    this.#lobby?.disable();
    this.#lobby = null;
    this.#live?.destroy();
    this.#live = null;
    this.#videos?.destroy();
    this.#videos = null;
    this.#recording?.destroy();
    this.#recording = null;
    this.#socket?.close();
    this.#call?.leave();
    this.#chat?.destroy();
    this.#participants?.clear();
    this.#notices.clear();
    this.#registry.peers.clear();
    byId('unmute-all').hidden = true;
    byId('invite').hidden = true;
    byId('video-grid').hidden = false;
    byId('library').hidden = true;
    byId('chat-refusal').hidden = true;
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
        history.replaceState(history.state, '', location.pathname);
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
    showJoining();
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
    const asked = this.#memberListings.ask();
    let members;
    try {
      members = await api.members(this.roomId);
    } catch {
      return; // the list keeps what it had; the server decides anyway
    }
    // Each frame and action asks again and answers may arrive out of order: an older
    // one (from before a mute, say) must not undo what a newer one showed.
    if (this.#left || !this.#memberListings.isNewest(asked)) return;
    this.#roles = new Map(members.map((member) => [member.user_id, member.role]));
    this.#videos?.rerender();
    const mine = this.#ownerId === this.#self.id ? 'owner' : this.#roles.get(this.#self.id);
    this.#recording?.setAllowed(mine === 'owner' || mine === 'moderator');
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
        // Muted before we came in: say so by the composer before anything is typed.
        this.#chat.setMuted(Boolean(frame.muted));
        // Recording before we came in (or while we were away): show it, or that it ended.
        this.#recording.apply(frame.recording ?? null);
        break;
      case 'recording':
        this.#recording.apply(frame);
        break;
      case 'message':
        this.#chat.receive(frame);
        this.#countUnread(frame);
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
        this.#recording.setCallMode(frame.call_mode);
        break;
      case 'media_state':
        this.#participants.updateMedia(frame.user_id, frame);
        this.#call.onMediaState(frame);
        break;
      case 'signal':
        this.#call.onSignal(frame.from, frame.from_connection ?? null, frame.data);
        break;
      case 'user_joined':
        if (frame.user_id !== this.#self.id) {
          this.#chat.announce(`${displayName(frame.user_id, frame.username)} joined`);
        }
        break;
      case 'user_left':
        this.#chat.forget(frame.user_id);
        this.#chat.announce(`${displayName(frame.user_id, frame.username)} left`);
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
      case 'video_deleted':
        this.#videos?.onFrame(frame);
        break;
      case 'error': {
        // Refused because a moderator muted us (perhaps before we came in): the chat
        // says so by the composer and gives the unsent text back.
        if (frame.code === 'muted') {
          this.#setMuted(true);
          this.#chat.refusedAsMuted();
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
    this.#chat?.setMuted(muted);
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
    byId('show-chat').addEventListener('click', () => this.#togglePanel('chat'), on);
    byId('show-people').addEventListener('click', () => this.#togglePanel('people'), on);
    byId('toggle-devices').addEventListener(
      'click',
      () => this.#showDevices(byId('device-panel').hidden),
      on,
    );
    byId('device-panel').addEventListener(
      'keydown',
      (event) => {
        if (event.key !== 'Escape') return;
        this.#showDevices(false);
        byId('toggle-devices').focus();
      },
      on,
    );
    byId('call-camera-select').addEventListener(
      'change',
      (event) => this.#call.useDevice('video', event.target.value),
      on,
    );
    byId('call-mic-select').addEventListener(
      'change',
      (event) => this.#call.useDevice('audio', event.target.value),
      on,
    );
    byId('copy-link').addEventListener(
      'click',
      () => this.#copy(new URL(roomPath(this.roomId), location.origin).href, null),
      on,
    );
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
      () => this.#copy(byId('invite-link').value, byId('invite-link')),
      on,
    );
  }

  /** Copy a link and say so; without clipboard access, select `field` for Ctrl+C. */
  async #copy(text, field) {
    const status = byId('copy-status');
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = 'Link copied';
    } catch {
      if (field) {
        field.select();
        status.textContent = 'Press Ctrl+C to copy the selected link';
      } else {
        status.textContent = `Copy this link: ${text}`;
      }
    }
    clearTimeout(this.#copiedTimer);
    this.#copiedTimer = setTimeout(() => {
      status.textContent = '';
    }, COPIED_SHOWN_MS);
  }

  /** Phones: show the chat or the people instead of the call (again: back to the call). */
  #togglePanel(panel) {
    this.#showPanel(this.#panel === panel ? null : panel);
  }

  #showPanel(panel) {
    this.#panel = panel;
    const view = document.querySelector('[data-view="room"]');
    if (panel) view.dataset.panel = panel;
    else delete view.dataset.panel;
    byId('show-chat').setAttribute('aria-pressed', String(panel === 'chat'));
    byId('show-people').setAttribute('aria-pressed', String(panel === 'people'));
    if (panel === 'chat') {
      this.#unread = 0;
      byId('chat-unread').hidden = true;
    }
  }

  /** Phones with the chat hidden: count what arrives on the Chat button. */
  #countUnread(frame) {
    if (this.#panel === 'chat' || frame.user_id === this.#self.id) return;
    if (!window.matchMedia(PHONE).matches) return;
    this.#unread += 1;
    const badge = byId('chat-unread');
    badge.textContent = this.#unread > 99 ? '99+' : String(this.#unread);
    badge.hidden = false;
  }

  /** The camera and microphone menu of the call. */
  async #showDevices(open) {
    const panel = byId('device-panel');
    const show = (shown) => {
      panel.hidden = !shown;
      byId('toggle-devices').setAttribute('aria-expanded', String(shown));
    };
    if (!open || !this.#call) {
      show(false);
      return;
    }
    // Filled first, so the menu never shows empty lists.
    const { cameras, microphones } = await listDevices();
    if (this.#left) return;
    const prefs = devicePrefs();
    const inUse = this.#call.devices;
    fillDeviceSelect(
      byId('call-camera-select'),
      cameras,
      inUse.cameraId ?? prefs.cameraId,
      'No camera found',
    );
    fillDeviceSelect(
      byId('call-mic-select'),
      microphones,
      inUse.microphoneId ?? prefs.microphoneId,
      'No microphone found',
    );
    show(true);
    byId('call-camera-select').focus();
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
    // While we share, the button stops it, and says so.
    screen.querySelector('.long').textContent = state.screen ? 'Stop sharing' : 'Share screen';
    screen.querySelector('.short').textContent = state.screen ? 'Stop' : 'Share';
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
