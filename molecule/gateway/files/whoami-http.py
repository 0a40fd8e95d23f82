#!/usr/bin/python3
"""TEST HARNESS: an HTTP server that answers every GET with the client's source address.

It stands for a host on the Internet in the gateway scenario: what it answers is the
address the Internet sees (the gateway's uplink address for masqueraded IPv4, the
client's own address for routed IPv6). Dual stack, on the port given as argument.
"""
import http.server
import socket
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        peer = self.client_address[0]
        if peer.startswith("::ffff:"):
            peer = peer[len("::ffff:"):]
        body = (peer + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class DualStackServer(http.server.HTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


if __name__ == "__main__":
    DualStackServer(("::", int(sys.argv[1])), Handler).serve_forever()
