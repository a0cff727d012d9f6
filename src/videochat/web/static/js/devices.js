// Which camera and microphone to use, and whether to join with them on: chosen on
// the pre-join screen (or during a call) and remembered in this browser.

const PREFS_KEY = 'videochat.devices';
// The tab that pressed Join in a room goes straight back into its call on a reload.
const JOINED_KEY = 'videochat.joined';

const DEFAULTS = { camera: true, microphone: true, cameraId: null, microphoneId: null };

/**
 * @returns {{camera: boolean, microphone: boolean, cameraId: string|null,
 *   microphoneId: string|null}}
 */
export function devicePrefs() {
  try {
    const stored = JSON.parse(localStorage.getItem(PREFS_KEY) ?? '{}');
    return {
      camera: typeof stored.camera === 'boolean' ? stored.camera : DEFAULTS.camera,
      microphone: typeof stored.microphone === 'boolean' ? stored.microphone : DEFAULTS.microphone,
      cameraId: typeof stored.cameraId === 'string' ? stored.cameraId : null,
      microphoneId: typeof stored.microphoneId === 'string' ? stored.microphoneId : null,
    };
  } catch {
    return { ...DEFAULTS };
  }
}

export function saveDevicePrefs(change) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify({ ...devicePrefs(), ...change }));
  } catch {
    // private mode or full storage: the choice lasts for this visit only
  }
}

export function rememberJoined(roomId) {
  try {
    sessionStorage.setItem(JOINED_KEY, roomId);
  } catch {
    // not remembered: a reload shows the pre-join screen again
  }
}

export function forgetJoined() {
  try {
    sessionStorage.removeItem(JOINED_KEY);
  } catch {
    // nothing stored
  }
}

export function joinedHere(roomId) {
  try {
    return sessionStorage.getItem(JOINED_KEY) === roomId;
  } catch {
    return false;
  }
}

/**
 * The cameras and microphones of this device. Before permission is given browsers
 * hide the labels (and sometimes the ids): those get numbered names.
 * @returns {Promise<{cameras: {id: string, label: string}[],
 *   microphones: {id: string, label: string}[]}>}
 */
export async function listDevices() {
  const found = { cameras: [], microphones: [] };
  if (!navigator.mediaDevices?.enumerateDevices) return found;
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return found;
  }
  for (const device of devices) {
    const list = { videoinput: found.cameras, audioinput: found.microphones }[device.kind];
    if (!list || !device.deviceId) continue;
    const fallback = `${device.kind === 'videoinput' ? 'Camera' : 'Microphone'} ${list.length + 1}`;
    list.push({ id: device.deviceId, label: device.label || fallback });
  }
  return found;
}

/**
 * Fill a <select> with devices, selecting `chosenId` (or the one in use). With no
 * device of the kind the select says so and is disabled.
 */
export function fillDeviceSelect(select, devices, chosenId, noneText) {
  select.replaceChildren();
  if (devices.length === 0) {
    select.append(new Option(noneText, ''));
    select.disabled = true;
    return;
  }
  for (const device of devices) {
    select.append(new Option(device.label, device.id, false, device.id === chosenId));
  }
  if (!devices.some((device) => device.id === chosenId)) select.selectedIndex = 0;
  select.disabled = false;
}

/** The device a live track comes from, if the browser says. */
export const deviceOf = (track) => track?.getSettings?.().deviceId ?? null;
