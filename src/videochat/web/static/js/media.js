// Camera, microphone and screen capture, with graceful fallbacks: a call is still
// worth joining to watch, listen and chat when this device cannot send anything.

// Modest by default: in a mesh every picture is encoded once per person in the call.
const CAMERA = {
  width: { ideal: 640 },
  height: { ideal: 480 },
  frameRate: { ideal: 24, max: 30 },
};
const MICROPHONE = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

export function describeMediaError(error) {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'permission was denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'none was found';
    case 'NotReadableError':
    case 'AbortError':
      return 'it is in use by another application';
    default:
      return error?.message || 'an unknown error';
  }
}

function unsupportedReason() {
  if (navigator.mediaDevices?.getUserMedia) return null;
  return window.isSecureContext
    ? 'This browser gives no access to a camera or microphone.'
    : 'Camera and microphone need a secure (https://) address.';
}

async function capture(constraints) {
  const stream = await navigator.mediaDevices.getUserMedia(constraints);
  return {
    audio: stream.getAudioTracks()[0] ?? null,
    video: stream.getVideoTracks()[0] ?? null,
  };
}

/** Constraints for one kind, on the chosen device when there is one. */
function constraintsFor(kind, deviceId) {
  const base = kind === 'video' ? CAMERA : MICROPHONE;
  return deviceId ? { ...base, deviceId: { exact: deviceId } } : base;
}

/**
 * One capture of the wanted kinds. A remembered device that is gone (unplugged, or
 * the ids changed) is not a reason to fail: try again with the default one.
 */
async function captureDevices({ audio, video }) {
  const constraints = {};
  if (audio) constraints.audio = constraintsFor('audio', audio.deviceId);
  if (video) constraints.video = constraintsFor('video', video.deviceId);
  try {
    return await capture(constraints);
  } catch (error) {
    const pinned = Boolean(audio?.deviceId || video?.deviceId);
    if (!pinned || !['OverconstrainedError', 'NotFoundError'].includes(error?.name)) throw error;
    const fallback = {};
    if (audio) fallback.audio = MICROPHONE;
    if (video) fallback.video = CAMERA;
    return capture(fallback);
  }
}

/**
 * Microphone and camera (those asked for, on the chosen devices), or whatever part of
 * them this device allows. `problem` says what is missing and why (for the pre-join
 * screen); `message` says the same to someone already in the call.
 * @param {{microphone?: boolean, camera?: boolean, microphoneId?: string|null,
 *   cameraId?: string|null}} [wanted]
 * @returns {Promise<{audio: MediaStreamTrack|null, video: MediaStreamTrack|null,
 *   problem: string|null, message: string|null}>}
 */
export async function openUserMedia({
  microphone = true,
  camera = true,
  microphoneId = null,
  cameraId = null,
} = {}) {
  const none = { audio: null, video: null, problem: null, message: null };
  if (!microphone && !camera) return none; // nothing wanted: nothing asked for
  const unsupported = unsupportedReason();
  if (unsupported) {
    const message = `${unsupported} You can still see, hear and chat.`;
    return { ...none, problem: unsupported, message };
  }
  const audio = microphone ? { deviceId: microphoneId } : null;
  const video = camera ? { deviceId: cameraId } : null;
  let firstError;
  try {
    return { ...(await captureDevices({ audio, video })), problem: null, message: null };
  } catch (error) {
    firstError = error;
  }
  const why = describeMediaError(firstError);
  if (audio && video) {
    try {
      const { audio: track } = await captureDevices({ audio });
      const problem = `Camera unavailable (${why})`;
      return {
        audio: track,
        video: null,
        problem,
        message: `${problem}: you joined with your microphone only.`,
      };
    } catch {
      // no microphone either; try the camera alone below
    }
    try {
      const { video: track } = await captureDevices({ video });
      const problem = `Microphone unavailable (${why})`;
      return {
        audio: null,
        video: track,
        problem,
        message: `${problem}: you joined with your camera only.`,
      };
    } catch {
      // nothing at all
    }
  }
  const what = audio && video ? 'No camera or microphone' : audio ? 'No microphone' : 'No camera';
  const problem = `${what} (${why})`;
  return { ...none, problem, message: `${problem}: you can still see, hear and chat.` };
}

export async function openCamera(deviceId = null) {
  const unsupported = unsupportedReason();
  if (unsupported) throw new Error(unsupported);
  const { video } = await captureDevices({ video: { deviceId } });
  return video;
}

export async function openMicrophone(deviceId = null) {
  const unsupported = unsupportedReason();
  if (unsupported) throw new Error(unsupported);
  const { audio } = await captureDevices({ audio: { deviceId } });
  return audio;
}

export const canShareScreen = () => Boolean(navigator.mediaDevices?.getDisplayMedia);

export async function openScreen() {
  const stream = await navigator.mediaDevices.getDisplayMedia({
    video: { frameRate: { ideal: 15, max: 30 } },
    audio: false,
  });
  const track = stream.getVideoTracks()[0];
  // Text and edges matter more than motion on a shared screen.
  if ('contentHint' in track) track.contentHint = 'detail';
  return track;
}
