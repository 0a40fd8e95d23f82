#!/usr/bin/python3
"""Lab only: answer every HTTP GET with the caller's IP address (port 8080)."""
import http.server


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.client_address[0].encode())


http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()  # noqa: S104
