#!/usr/bin/env python3
"""A loopback HTTP server for the `data fetch` tests: serves the files under
--root with one path prefix per behaviour, and logs every request.

  /good/<file>      the file; honours "Range: bytes=N-" with 206
  /cut/<file>       announces the whole file, sends half, closes (every time)
  /cutonce/<file>   like /cut the first time a file is asked for, then /good
  /corrupt/<file>   the file with one byte changed (wrong checksum)
  /short/<file>     the first half, announced as the whole response
  /norange/<file>   the whole file with 200, ignoring any Range header
  anything else     404

Prints the port it listens on (127.0.0.1 only), then serves until its parent
exits or --lifetime seconds pass, whichever is first.
"""
import argparse
import http.server
import os
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=900)
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    lock = threading.Lock()
    served_once = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def handle(self):
            try:
                super().handle()
            except (ConnectionError, TimeoutError):
                pass  # the client went away (as the tests make it do)

        def do_GET(self):
            parts = self.path.lstrip("/").split("/", 1)
            mode = parts[0]
            rel = parts[1] if len(parts) > 1 else ""
            rng = self.headers.get("Range", "-")
            with lock:
                with open(args.log, "a") as log:
                    log.write(f"{mode} {rel} {rng}\n")
            path = os.path.abspath(os.path.join(root, rel))
            if (mode not in ("good", "cut", "cutonce", "corrupt", "short", "norange")
                    or not path.startswith(root + os.sep) or not os.path.isfile(path)):
                self.send_error(404)
                return
            with open(path, "rb") as f:
                data = f.read()
            if mode == "cutonce":
                with lock:
                    first = rel not in served_once
                    served_once.add(rel)
                mode = "cut" if first else "good"
            if mode == "corrupt":
                mid = len(data) // 2
                data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
            if mode == "short":
                data = data[: len(data) // 2]
            start = 0
            if rng.startswith("bytes=") and mode != "norange":
                start = int(rng[len("bytes="):].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "cut":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    parent = os.getppid()
    deadline = time.time() + args.lifetime

    def watchdog():
        while time.time() < deadline and os.getppid() == parent:
            time.sleep(0.2)
        server.shutdown()

    threading.Thread(target=watchdog, daemon=True).start()
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
