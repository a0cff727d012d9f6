// One room's realtime socket. It reconnects by itself with exponential backoff and
// jitter, and every (re)connect asks for `?since=<last message id>` so the server
// replays what we missed, in order, before any live frame.

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 8_000;
// A connection that lived this long was healthy: the next failure starts the backoff over.
const STABLE_MS = 5_000;
const PING_EVERY_MS = 20_000;
// No frame at all (not even a pong) for this long means the connection is dead
// even if the browser has not noticed yet (a laptop waking up, a NAT forgetting us).
const SILENCE_LIMIT_MS = 50_000;
const RATE_LIMITED = 4029;
// Kicked or banned by a moderator: coming straight back would be wrong.
const REMOVED = 4003;
// The access token that opened the socket expired: reconnect at once with a fresh one.
const TOKEN_EXPIRED = 4001;

export class RoomSocket {
  #options;
  #ws = null;
  #attempt = 0;
  #retryTimer = null;
  #pingTimer = null;
  #stopped = false;
  #everOpened = false;
  #failedHandshakes = 0;
  #openedAt = 0;
  #lastFrameAt = 0;

  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string} options.userId
   * @param {() => Promise<string|null>} options.ticket a one-time socket ticket (null: signed out)
   * @param {() => number|null} options.since the last message id we have
   * @param {(frame: object) => void} options.onFrame
   * @param {(info: {reconnect: boolean}) => void} options.onOpen
   * @param {(state: string, info?: object) => void} options.onStatus
   * @param {(failures: number) => void} [options.onRefused] handshakes keep failing
   * @param {(reason: string) => void} [options.onRemoved] a moderator removed us
   */
  constructor(options) {
    this.#options = options;
    this.onOnline = () => this.#retryNow();
  }

  start() {
    window.addEventListener('online', this.onOnline);
    this.#connect();
  }

  get isOpen() {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  /** Send a frame now; false when not connected (the caller decides what that means). */
  send(frame) {
    if (!this.isOpen) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  close() {
    this.#stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.#retryTimer);
    this.#stopHeartbeat();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) closeQuietly(ws, 1000, 'leaving');
  }

  async #connect() {
    if (this.#stopped) return;
    const { roomId, userId } = this.#options;
    this.#options.onStatus(this.#everOpened ? 'reconnecting' : 'connecting');
    // A fresh one-time ticket per attempt: unlike a token, one seen in a log is spent.
    let ticket = null;
    try {
      ticket = await this.#options.ticket();
    } catch {
      // Offline, or the server is down or busy: back off and try again.
      if (!this.#stopped) this.#scheduleRetry(1006);
      return;
    }
    if (this.#stopped) return;
    if (!ticket) {
      this.#options.onStatus('signed-out');
      return;
    }
    // v=2: the whole protocol (welcome, presence, calls...); without it the server
    // sends only the prototype's frames (docs/PROTOCOL.md, "Protocol versions").
    const query = new URLSearchParams({ ticket, v: '2' });
    const since = this.#options.since();
    if (since !== null && since !== undefined) query.set('since', String(since));
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = `/ws/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`;
    const url = `${scheme}//${location.host}${path}?${query}`;

    const ws = new WebSocket(url);
    this.#ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.#failedHandshakes = 0;
      this.#openedAt = this.#lastFrameAt = Date.now();
      this.#startHeartbeat();
      const reconnect = this.#everOpened;
      this.#everOpened = true;
      this.#options.onStatus('open');
      this.#options.onOpen({ reconnect });
    };
    ws.onmessage = (event) => {
      this.#lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === 'object') this.#options.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#stopHeartbeat();
      if (opened && Date.now() - this.#openedAt > STABLE_MS) this.#attempt = 0;
      if (event.code === REMOVED) {
        this.close();
        this.#options.onRemoved?.(event.reason);
        return;
      }
      if (event.code === TOKEN_EXPIRED && opened) {
        // Not a failure: come back now with a new ticket, made from a refreshed token
        // (the replay covers the gap).
        this.#attempt = 0;
        this.#connect();
        return;
      }
      if (!opened) {
        // A refused handshake looks like this too (the browser hides the 403).
        this.#failedHandshakes += 1;
        if (this.#failedHandshakes % 3 === 0) this.#options.onRefused?.(this.#failedHandshakes);
      }
      this.#scheduleRetry(event.code);
    };
  }

  #scheduleRetry(code) {
    if (this.#stopped) return;
    const ceiling = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.#attempt);
    // Half fixed, half random: everyone in a room reconnecting after a server
    // restart should not arrive in the same instant.
    let delay = ceiling / 2 + Math.random() * (ceiling / 2);
    if (code === RATE_LIMITED) delay = Math.max(delay, 10_000);
    this.#attempt += 1;
    this.#options.onStatus('waiting', { delay, attempt: this.#attempt });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #retryNow() {
    if (this.#stopped || this.#ws) return;
    clearTimeout(this.#retryTimer);
    this.#attempt = 0;
    this.#connect();
  }

  #startHeartbeat() {
    this.#stopHeartbeat();
    this.#pingTimer = setInterval(() => {
      if (Date.now() - this.#lastFrameAt > SILENCE_LIMIT_MS) {
        this.#drop();
        return;
      }
      this.send({ type: 'ping', time: Date.now() });
    }, PING_EVERY_MS);
  }

  #stopHeartbeat() {
    clearInterval(this.#pingTimer);
    this.#pingTimer = null;
  }

  /** Give up on a silent connection without waiting for the browser to notice. */
  #drop() {
    const ws = this.#ws;
    if (!ws) return;
    this.#ws = null;
    this.#stopHeartbeat();
    closeQuietly(ws, 1000, 'silent');
    this.#scheduleRetry(1006);
  }
}

/**
 * Close a socket we no longer listen to. One still connecting is closed once it opens:
 * closing it before makes the browser log "closed before the connection is established".
 */
function closeQuietly(ws, code, reason) {
  ws.onclose = ws.onmessage = null;
  if (ws.readyState === WebSocket.CONNECTING) {
    ws.onopen = () => ws.close(code, reason);
  } else {
    ws.onopen = null;
    ws.close(code, reason);
  }
}
