// Who is speaking: the audio level of everyone on video, from the peer connections'
// own statistics (getStats: inbound audio for the others, the media source for us),
// so it works without an AudioContext (which a reload without a click may not get)
// and costs no extra audio processing. The loudest person above a threshold is the
// speaker; the highlight lingers a moment so it does not flicker between words.

const POLL_MS = 300;
// RMS level (0..1) from audio energy; quiet rooms sit below 0.01, speech well above.
const SPEAKING_LEVEL = 0.02;
// Keep the highlight this long after the speaker went quiet (pauses between words).
const HOLD_MS = 1200;

export class SpeakerDetector {
  #selfId;
  #peers;
  #selfAudible;
  #onSpeaker;
  #timer = null;
  #polling = false;
  #energy = new Map(); // user id → {energy, duration} at the last poll
  #speaker = null;
  #heardAt = 0;

  /**
   * @param {object} options
   * @param {string} options.selfId
   * @param {() => [string, RTCPeerConnection][]} options.peers the connections of the call
   * @param {() => boolean} options.selfAudible whether our microphone is on
   * @param {(userId: string|null) => void} options.onSpeaker the speaker changed
   */
  constructor({ selfId, peers, selfAudible, onSpeaker }) {
    this.#selfId = selfId;
    this.#peers = peers;
    this.#selfAudible = selfAudible;
    this.#onSpeaker = onSpeaker;
  }

  start() {
    this.#timer ??= setInterval(() => this.#poll(), POLL_MS);
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = null;
    this.#set(null);
  }

  async #poll() {
    if (this.#polling) return; // a slow getStats: skip a beat rather than pile up
    this.#polling = true;
    try {
      const levels = await this.#levels();
      if (this.#timer !== null) this.#decide(levels);
    } catch (error) {
      console.debug('videochat: audio levels', error);
    } finally {
      this.#polling = false;
    }
  }

  /** user id → RMS level over the last poll interval. */
  async #levels() {
    const levels = new Map();
    const peers = this.#peers();
    let selfMeasured = false;
    const seen = new Set();
    await Promise.all(
      peers.map(async ([userId, pc]) => {
        const stats = await pc.getStats();
        stats.forEach((entry) => {
          if (entry.kind !== 'audio' || entry.totalAudioEnergy === undefined) return;
          if (entry.type === 'inbound-rtp') {
            seen.add(userId);
            levels.set(userId, this.#level(userId, entry));
          } else if (entry.type === 'media-source' && !selfMeasured) {
            // Our microphone, the same on every connection: read it once.
            selfMeasured = true;
            seen.add(this.#selfId);
            const level = this.#level(this.#selfId, entry);
            levels.set(this.#selfId, this.#selfAudible() ? level : 0);
          }
        });
      }),
    );
    for (const userId of [...this.#energy.keys()]) {
      if (!seen.has(userId)) this.#energy.delete(userId); // gone from the call
    }
    return levels;
  }

  #level(userId, entry) {
    const now = { energy: entry.totalAudioEnergy, duration: entry.totalSamplesDuration ?? 0 };
    const before = this.#energy.get(userId);
    this.#energy.set(userId, now);
    if (!before) return 0;
    const duration = now.duration - before.duration;
    if (duration <= 0) return 0;
    // totalAudioEnergy sums level² × seconds: the mean square over the interval.
    return Math.sqrt(Math.max(0, now.energy - before.energy) / duration);
  }

  #decide(levels) {
    let loudest = null;
    let loudestLevel = SPEAKING_LEVEL;
    for (const [userId, level] of levels) {
      if (level > loudestLevel) {
        loudest = userId;
        loudestLevel = level;
      }
    }
    const now = performance.now();
    if (loudest) {
      this.#heardAt = now;
      this.#set(loudest);
    } else if (this.#speaker && now - this.#heardAt > HOLD_MS) {
      this.#set(null);
    }
  }

  #set(userId) {
    if (this.#speaker === userId) return;
    this.#speaker = userId;
    this.#onSpeaker(userId);
  }
}
