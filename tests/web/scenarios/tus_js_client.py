"""tus-js-client (npm, pinned in tests/web/package.json) uploads a real clip to a slot.

The page is another origin, a front end on ``http://127.0.0.1:5173`` (a small HTTP
server in this process serving the page, tus-js-client's browser bundle and the clip; the
port is free in the scenarios' fresh network namespace, and the page must be on loopback
too: Chromium keeps pages of other address spaces away from loopback) that talks to
the server cross-origin.
It makes a guest, a room and a slot with a title only, then gives tus-js-client the
slot's ``tus_url`` as its endpoint with a chunk size that needs several PATCHes. The
first run is aborted after two chunks; a second ``tus.Upload`` of the same file finds
the first one by its fingerprint (localStorage) and resumes where the server says
(HEAD) instead of creating again. The video then becomes ready and its absolute
``playback_url`` is an HLS playlist. A second slot is uploaded with
``uploadUrl: tus_url`` and ``uploadLengthDeferred`` (the length sent on the last PATCH),
and a third through ``/uploads/tus`` with the room and a non-ASCII title in
``Upload-Metadata``.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.media.samples import write_video
from tests.web import harness

FRONT_PORT = 5173
FRONT = f"http://127.0.0.1:{FRONT_PORT}"
TUS_JS = Path(__file__).resolve().parents[1] / "node_modules/tus-js-client/dist/tus.min.js"
CHUNK = 64 * 1024
TITLE = "Café ☕ by tus-js-client"
SETTINGS = {
    "VIDEOCHAT_CORS_ORIGINS": f'["{FRONT}"]',
    "VIDEOCHAT_MEDIA__SEGMENT_SECONDS": "1",
}

# Everything the page does through fetch and tus-js-client; each tus request is logged
# (method, status, Upload-Offset sent and received) by the client's own hooks.
UPLOAD_JS = """
async ({api, chunkSize, TITLE}) => {
  const file = new File([await (await fetch('/clip.mp4')).blob()], 'clip.mp4',
                        {type: 'video/mp4', lastModified: 1700000000000});
  const call = async (method, path, token, body) => {
    const headers = {'Content-Type': 'application/json'};
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(api + path, {method, headers, body: body && JSON.stringify(body)});
    if (!response.ok) {
      throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    }
    return response.json();
  };
  const user = await call('POST', '/users', null, {username: 'tusjs'});
  const token = user.access_token;
  const room = await call('POST', '/rooms', token, {name: 'Tus room'});
  const slot = await call('POST', `/rooms/${room.id}/video-upload`, token,
                          {title: 'By tus-js-client'});

  const requests = [];
  const options = {
    endpoint: slot.tus_url,
    chunkSize,
    headers: {Authorization: `Bearer ${token}`},
    metadata: {filename: file.name, filetype: file.type},
    retryDelays: [0, 200, 500, 1000, 2000],
    onBeforeRequest(req) { req._sentOffset = req.getHeader('Upload-Offset') ?? null; },
    onAfterResponse(req, res) {
      requests.push({method: req.getMethod(), status: res.getStatus(), sent: req._sentOffset,
                     offset: res.getHeader('Upload-Offset') ?? null});
    },
  };
  const aborted = await new Promise((resolve, reject) => {
    let chunks = 0;
    const upload = new tus.Upload(file, {
      ...options,
      onChunkComplete(size, sent) {
        chunks += 1;
        if (chunks === 2) upload.abort().then(() => resolve({sent, url: upload.url}), reject);
      },
      onError: reject,
      onSuccess: () => reject(new Error('the upload finished before it was aborted')),
    });
    upload.start();
  });
  const firstRun = requests.length;
  const resumed = new tus.Upload(file, options);
  const previous = await resumed.findPreviousUploads();
  if (!previous.length) throw new Error('no previous upload found by its fingerprint');
  resumed.resumeFromPreviousUpload(previous[0]);
  await new Promise((resolve, reject) => {
    resumed.options.onSuccess = resolve;
    resumed.options.onError = reject;
    resumed.start();
  });

  const waitFor = async (videoId, wanted) => {
    for (let i = 0; i < 600; i += 1) {
      const video = await call('GET', `/videos/${videoId}`, token);
      if (video.status === 'failed') throw new Error(`failed: ${video.error}`);
      if (wanted.includes(video.status)) return video;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${videoId} never reached ${wanted}`);
  };
  const ready = await waitFor(slot.id, ['ready']);
  const playlist = await (await fetch(ready.playback_url)).text();

  // Another slot, no creation: its tus_url as the upload URL, the length sent at the end.
  const second = await call('POST', `/rooms/${room.id}/video-upload`, token, {title: 'Deferred'});
  const deferredStart = requests.length;
  await new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      ...options, endpoint: null, uploadUrl: second.tus_url, uploadLengthDeferred: true,
      storeFingerprintForResuming: false, onSuccess: resolve, onError: reject,
    });
    upload.start();
  });
  const deferred = await waitFor(second.id, ['uploaded', 'processing', 'ready']);

  // The generic creation endpoint: the room and a non-ASCII title in Upload-Metadata.
  let createdVideoId = null;
  await new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      ...options, endpoint: `${api}/uploads/tus`, storeFingerprintForResuming: false,
      metadata: {room_id: room.id, title: TITLE, filename: file.name, filetype: file.type},
      onAfterResponse(req, res) {
        if (req.getMethod() === 'POST') createdVideoId = res.getHeader('X-Video-Id') ?? null;
      },
      onSuccess: resolve, onError: reject,
    });
    upload.start();
  });
  const created = await waitFor(createdVideoId, ['uploaded', 'processing', 'ready']);
  return {
    room_id: room.id,
    created: {id: created.id, title: created.title, room_id: created.room_id,
              size_bytes: created.size_bytes},
    size: file.size, slot, aborted, firstRun: requests.slice(0, firstRun),
    resumed: requests.slice(firstRun, deferredStart),
    deferredRequests: requests.slice(deferredStart),
    previousUploadUrl: previous[0].uploadUrl, resumedUrl: resumed.url,
    ready: {status: ready.status, playback_url: ready.playback_url, size_bytes: ready.size_bytes},
    playlistHead: playlist.slice(0, 7),
    deferred: {status: deferred.status, size_bytes: deferred.size_bytes},
  };
}
"""


PAGE = (
    b"<!doctype html><title>front end</title><link rel=icon href='data:,'>"
    b"<script src='/tus.min.js'></script>"
)


@contextlib.contextmanager
def front_end(clip: bytes) -> Iterator[None]:
    """Serve the front end's three files on FRONT until the block ends."""
    files = {
        "/": (PAGE, "text/html"),
        "/tus.min.js": (TUS_JS.read_bytes(), "text/javascript"),
        "/clip.mp4": (clip, "video/mp4"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = files.get(self.path, (b"", ""))
            self.send_response(200 if kind else 404)
            self.send_header("Content-Type", kind or "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", FRONT_PORT), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    if not TUS_JS.exists():
        raise harness.ScenarioError(f"{TUS_JS} is missing: run scripts/ensure-test-tools.sh")
    with tempfile.TemporaryDirectory(prefix="videochat-tusjs-") as tmp:
        clip = write_video(Path(tmp) / "clip.mp4", width=320, height=240, seconds=2.0).read_bytes()
    page = harness.new_page(browser, FRONT, errors)
    with front_end(clip):
        page.goto("/")
        page.wait_for_function("typeof window.tus?.Upload === 'function'")
        result: dict[str, Any] = page.evaluate(
            UPLOAD_JS, {"api": server.url, "chunkSize": CHUNK, "TITLE": TITLE}
        )
    result["api"] = server.url
    result["clip_bytes"] = len(clip)
    return result
