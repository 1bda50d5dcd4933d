#!/usr/bin/env python3
"""Opens an HTML file in headless Chromium over the DevTools protocol and checks it the way a reader
would see it: every <img> decoded (complete, non-zero natural size), at least --min-figures figures
with a data-figure id, and no console error, uncaught exception or failed load (Runtime and Log
domains). Saves a full-page screenshot. Exit 0 when all hold; 1 with one line per problem.

  browser_check.py --chromium chromium --html report.html --screenshot shot.png --min-figures 4

--expect-failures turns it around (for the checker's own test): exit 0 only if problems are found.
Needs Debian's chromium and python3-websocket (websocket-client).
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

PAGE_TIMEOUT = 60


class DevTools:
    """A minimal DevTools-protocol client: commands with ids, events collected while waiting."""

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=PAGE_TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        # wait_for leaves the socket with its last, short timeout (0.5 s after the settle wait): a
        # call gets the page's full timeout again, or a screenshot on a loaded machine fails.
        self.ws.settimeout(PAGE_TIMEOUT)
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["method"] == method for e in self.events):
                return True
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if "method" in message:
                self.events.append(message)
        return any(e["method"] == method for e in self.events)

    def close(self):
        self.ws.close()


def start_chromium(chromium, profile):
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
           "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
           "--remote-allow-origins=*", f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + PAGE_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{chromium} exited with {proc.returncode} before opening its DevTools port")
        if os.path.exists(port_file):
            lines = open(port_file).read().split()
            if lines:
                return proc, int(lines[0])
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{chromium} did not open a DevTools port within {PAGE_TIMEOUT} s")


def page_target(port):
    deadline = time.monotonic() + PAGE_TIMEOUT
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = [t for t in json.load(r) if t.get("type") == "page"]
        if targets:
            return targets[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise RuntimeError("no page target in Chromium")


IMAGE_STATE = """JSON.stringify(Array.from(document.images).map(i => ({
  id: i.id, figure: i.dataset.figure || null, complete: i.complete, width: i.naturalWidth,
  height: i.naturalHeight, src: i.getAttribute('src').slice(0, 40)})))"""


def check_page(chromium, html_path, screenshot, min_figures, width):
    problems = []
    profile = tempfile.mkdtemp(prefix="vindex-chromium-")
    proc = None
    try:
        proc, port = start_chromium(chromium, profile)
        tools = DevTools(page_target(port))
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        tools.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        tools.call("Page.navigate", url="file://" + os.path.abspath(html_path))
        if not tools.wait_for("Page.loadEventFired", PAGE_TIMEOUT):
            problems.append(f"the page did not finish loading within {PAGE_TIMEOUT} s")
        tools.wait_for("never", 0.5)  # let late console messages arrive

        state = tools.call("Runtime.evaluate", expression=IMAGE_STATE, returnByValue=True)
        images = json.loads(state["result"]["value"])
        for img in images:
            if not img["complete"] or img["width"] == 0 or img["height"] == 0:
                problems.append(f"image {img['id'] or img['src']!r} did not load "
                                f"(complete={img['complete']}, {img['width']}x{img['height']})")
            elif not img["src"].startswith("data:image/png;base64,"):
                problems.append(f"image {img['id']!r} is not embedded (src {img['src']!r}...)")
        figures = [img for img in images if img["figure"]]
        if len(figures) < min_figures:
            problems.append(f"{len(figures)} figure(s) on the page, expected at least {min_figures}")

        for event in tools.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                problems.append(f"console {params['type']}: {text}")
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                problems.append(f"uncaught exception: {details.get('exception', {}).get('description', details.get('text'))}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                problems.append(f"log error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".rstrip())

        if screenshot:
            metrics = tools.call("Page.getLayoutMetrics")
            height = int(metrics.get("cssContentSize", metrics.get("contentSize"))["height"])
            tools.call("Emulation.setDeviceMetricsOverride", width=width, height=min(height, 16000),
                       deviceScaleFactor=1, mobile=False)
            shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        tools.close()
        return problems, len(figures)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default="chromium")
    ap.add_argument("--html", required=True)
    ap.add_argument("--screenshot")
    ap.add_argument("--min-figures", type=int, default=1)
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--expect-failures", action="store_true")
    args = ap.parse_args()
    if not os.path.isfile(args.html):
        print(f"FAIL: {args.html}: no such file")
        return 1
    problems, n_figures = check_page(args.chromium, args.html, args.screenshot, args.min_figures, args.width)
    for p in problems:
        print(("found (expected): " if args.expect_failures else "FAIL: ") + p)
    if args.expect_failures:
        if not problems:
            print("FAIL: the broken page passed the browser check")
            return 1
        print(f"browser check caught {len(problems)} problem(s) on the broken page, as it must")
        return 0
    if problems:
        return 1
    print(f"browser check: {n_figures} figures loaded, no console errors"
          + (f"; screenshot {args.screenshot}" if args.screenshot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
