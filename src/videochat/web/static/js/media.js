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

/**
 * Microphone and camera, or whatever part of them this device allows.
 * @returns {Promise<{audio: MediaStreamTrack|null, video: MediaStreamTrack|null,
 *   message: string|null}>}
 */
export async function openUserMedia() {
  const unsupported = unsupportedReason();
  if (unsupported) {
    const message = `${unsupported} You can still see, hear and chat.`;
    return { audio: null, video: null, message };
  }
  let firstError;
  try {
    return { ...(await capture({ audio: MICROPHONE, video: CAMERA })), message: null };
  } catch (error) {
    firstError = error;
  }
  try {
    const { audio } = await capture({ audio: MICROPHONE });
    return {
      audio,
      video: null,
      message:
        `Camera unavailable (${describeMediaError(firstError)}): ` +
        'you joined with your microphone only.',
    };
  } catch {
    // no microphone either; try the camera alone below
  }
  try {
    const { video } = await capture({ video: CAMERA });
    return {
      audio: null,
      video,
      message:
        `Microphone unavailable (${describeMediaError(firstError)}): ` +
        'you joined with your camera only.',
    };
  } catch {
    // nothing at all
  }
  return {
    audio: null,
    video: null,
    message:
      `No camera or microphone (${describeMediaError(firstError)}): ` +
      'you can still see, hear and chat.',
  };
}

export async function openCamera() {
  const unsupported = unsupportedReason();
  if (unsupported) throw new Error(unsupported);
  const { video } = await capture({ video: CAMERA });
  return video;
}

export async function openMicrophone() {
  const unsupported = unsupportedReason();
  if (unsupported) throw new Error(unsupported);
  const { audio } = await capture({ audio: MICROPHONE });
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
