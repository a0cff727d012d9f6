// A microphone level on a <meter>, so people can see their microphone works before
// they join. WebAudio's AnalyserNode on the local track; nothing is played.

const INTERVAL_MS = 100;

export class LevelMeter {
  #meter;
  #context = null;
  #source = null;
  #analyser = null;
  #samples = null;
  #timer = null;

  /** @param {HTMLMeterElement} meter */
  constructor(meter) {
    this.#meter = meter;
  }

  /** Show the level of `track` (null: none). */
  attach(track) {
    this.#detach();
    if (!track || !window.AudioContext) return;
    try {
      this.#context ??= new AudioContext();
      // Created without a click the context may start suspended; any click resumes it.
      if (this.#context.state === 'suspended') this.#context.resume().catch(() => {});
      this.#source = this.#context.createMediaStreamSource(new MediaStream([track]));
      this.#analyser = this.#context.createAnalyser();
      this.#analyser.fftSize = 1024;
      this.#samples = new Float32Array(this.#analyser.fftSize);
      this.#source.connect(this.#analyser);
    } catch (error) {
      console.warn('videochat: no microphone level', error);
      return;
    }
    this.#timer = setInterval(() => this.#measure(), INTERVAL_MS);
  }

  /** A click happened: a suspended context may start now. */
  resume() {
    if (this.#context?.state === 'suspended') this.#context.resume().catch(() => {});
  }

  stop() {
    this.#detach();
    this.#context?.close().catch(() => {});
    this.#context = null;
  }

  #measure() {
    this.#analyser.getFloatTimeDomainData(this.#samples);
    let squares = 0;
    for (const sample of this.#samples) squares += sample * sample;
    const rms = Math.sqrt(squares / this.#samples.length);
    // Speech sits far below full scale: stretch the low end so talking moves the bar.
    this.#meter.value = Math.min(1, rms * 4);
  }

  #detach() {
    clearInterval(this.#timer);
    this.#timer = null;
    this.#source?.disconnect();
    this.#source = this.#analyser = this.#samples = null;
    this.#meter.value = 0;
  }
}
