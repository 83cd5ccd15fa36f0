#!/usr/bin/env python3
"""Records what a real XMPP server sends during a client session, and derives
the expected parser events from it with Python's expat (independent of the
library's own libxml2-based parser).

    capture.py session --port P --out NAME   plays a session as alice (bob sends
                                              her a message); writes NAME.xml
                                              and NAME.canon
    capture.py error --port P --out NAME     asks for an unknown host and records
                                              the stream error
    capture.py canon FILE.xml ...            rewrites FILE.canon from FILE.xml

NAME.xml holds every byte the server sent on the recorded connection. The
stream restarts after SASL success, so it contains two documents; canon()
splits them at the second "<?xml" (or "<stream:stream" when the server sends no
XML declaration) and parses each with expat.

Canonical form, one line per event:
    OPEN <canon of the stream root without children>
    <canon of each depth-1 element>
    CLOSE                      (the stream end tag)
canon(e) = "<{" ns "}" localname, then for each attribute sorted bytewise by its
qualified name (plain name when unprefixed, "xml:lang", ...): ' key="esc(value)"',
then ">", the children in order (adjacent text merged and written as esc(text),
elements as canon(child)), then "</>". Namespace declarations are not
attributes. esc: & < > " LF CR TAB -> &amp; &lt; &gt; &quot; &#10; &#13; &#9;.

Python 3 standard library only.
"""

import argparse
import base64
import os
import select
import socket
import sys
import time
import xml.parsers.expat

STREAM_NS = "http://etherx.jabber.org/streams"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
XML_NS = "http://www.w3.org/XML/1998/namespace"
SEP = " "  # expat namespace separator: "uri local prefix"

# The message bob sends alice: markup characters and non-ASCII text in the
# body and in an attribute value.
MESSAGE_BODY = ("Fish & chips <b>bold</b> \"double\" 'single' > naïve café 日本語 🎉"
                "\nline two\tafter a tab")
MESSAGE_ID = "m1&<>\"'"
WAIT_SECONDS = 10


def esc(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
            .replace("\t", "&#9;"))


class Element:
    def __init__(self, ns, name, attrs):
        self.ns = ns
        self.name = name
        self.attrs = attrs  # qualified name -> value
        self.children = []  # str or Element, adjacent strings merged

    def add_text(self, text):
        if self.children and isinstance(self.children[-1], str):
            self.children[-1] += text
        else:
            self.children.append(text)

    def find(self, ns, name):
        for child in self.children:
            if isinstance(child, Element) and child.ns == ns and child.name == name:
                return child
        return None

    def text(self):
        return "".join(c for c in self.children if isinstance(c, str))


def split_name(expat_name):
    """Returns (namespace, local name, qualified name) of an expat name."""
    parts = expat_name.split(SEP)
    if len(parts) == 1:
        return "", parts[0], parts[0]
    ns, local = parts[0], parts[1]
    if len(parts) == 3:
        return ns, local, parts[2] + ":" + local
    if ns == XML_NS:  # expat reports no prefix for the predeclared xml namespace
        return ns, local, "xml:" + local
    return ns, local, local


def canon(e, with_children=True):
    out = ["<{", e.ns, "}", e.name]
    for key in sorted(e.attrs, key=lambda k: k.encode("utf-8")):
        out.append(' %s="%s"' % (key, esc(e.attrs[key])))
    out.append(">")
    if with_children:
        for child in e.children:
            out.append(esc(child) if isinstance(child, str) else canon(child))
    out.append("</>")
    return "".join(out)


class StreamParser:
    """One XML stream document fed in pieces; collects (kind, element) events:
    ("open", root), ("stanza", depth-1 element), ("close", root)."""

    def __init__(self):
        self.events = []
        self.stack = []
        p = xml.parsers.expat.ParserCreate(namespace_separator=SEP)
        p.namespace_prefixes = True
        p.buffer_text = False
        p.ordered_attributes = False
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        self.parser = p

    def feed(self, data):
        self.parser.Parse(data, False)

    def _start(self, name, attrs):
        ns, local, _ = split_name(name)
        qualified = {split_name(k)[2]: v for k, v in attrs.items()}
        e = Element(ns, local, qualified)
        if len(self.stack) >= 2:
            self.stack[-1].children.append(e)
        self.stack.append(e)
        if len(self.stack) == 1:
            self.events.append(("open", e))

    def _end(self, name):
        e = self.stack.pop()
        if not self.stack:
            self.events.append(("close", e))
        elif len(self.stack) == 1:
            self.events.append(("stanza", e))

    def _text(self, data):
        # Text directly inside the stream root (keepalives) is not an event.
        if len(self.stack) >= 2:
            self.stack[-1].add_text(data)


def split_documents(data):
    """Splits the server's bytes where a new stream header starts."""
    marker = b"<?xml" if data.lstrip().startswith(b"<?xml") else b"<stream:stream"
    starts = [0]
    pos = data.find(marker, 1)
    while pos != -1:
        starts.append(pos)
        pos = data.find(marker, pos + 1)
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def canon_lines(data):
    lines = []
    for doc in split_documents(data):
        sp = StreamParser()
        sp.feed(doc)
        for kind, e in sp.events:
            if kind == "open":
                lines.append("OPEN " + canon(e, with_children=False))
            elif kind == "stanza":
                lines.append(canon(e))
            else:
                lines.append("CLOSE")
    return lines


def write_canon(xml_path):
    with open(xml_path, "rb") as f:
        data = f.read()
    canon_path = os.path.splitext(xml_path)[0] + ".canon"
    lines = canon_lines(data)
    with open(canon_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    return canon_path, lines


class Session:
    """A client connection that keeps every byte the server sends."""

    def __init__(self, host, port, domain):
        self.sock = socket.create_connection((host, port), timeout=WAIT_SECONDS)
        self.domain = domain
        self.received = bytearray()
        self.parser = None
        self.seen = 0  # events already handed out

    def send(self, text):
        self.sock.sendall(text.encode("utf-8"))

    def open_stream(self, to=None):
        self.parser = StreamParser()
        self.seen = 0
        self.send("<?xml version='1.0'?><stream:stream to='%s' version='1.0' xml:lang='en' "
                  "xmlns='jabber:client' xmlns:stream='%s'>" % (to or self.domain, STREAM_NS))

    def _read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("server sent nothing expected within %ds" % WAIT_SECONDS)
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            return True
        data = self.sock.recv(65536)
        if not data:
            return False
        self.received += data
        self.parser.feed(data)
        return True

    def wait(self, match, what):
        """Returns the first new event for which match(kind, element) holds."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            while self.seen < len(self.parser.events):
                kind, e = self.parser.events[self.seen]
                self.seen += 1
                if match(kind, e):
                    return e
            if not self._read(deadline):
                raise ConnectionError("server closed the connection while waiting for " + what)

    def wait_stanza(self, ns, name, what, **attrs):
        def match(kind, e):
            return (kind == "stanza" and e.ns == ns and e.name == name and
                    all(e.attrs.get(k) == v for k, v in attrs.items()))
        return self.wait(match, what)

    def drain_until_eof(self, seconds):
        """Reads until the server closes the connection (or seconds pass)."""
        deadline = time.monotonic() + seconds
        try:
            while self._read(deadline):
                pass
        except TimeoutError:
            pass

    def close(self):
        self.sock.close()


def login(s, user, password, resource):
    """PLAIN in the clear (the test servers allow it), restart, bind."""
    s.open_stream()
    features = s.wait_stanza(STREAM_NS, "features", "stream features")
    mechs = features.find(SASL_NS, "mechanisms")
    offered = [m.text() for m in mechs.children if isinstance(m, Element)] if mechs else []
    if "PLAIN" not in offered:
        raise RuntimeError("server does not offer PLAIN: %r" % offered)
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    s.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (SASL_NS, token))
    result = s.wait(lambda k, e: k == "stanza" and e.ns == SASL_NS and
                    e.name in ("success", "failure"), "SASL result")
    if result.name != "success":
        raise RuntimeError("authentication of %s failed" % user)
    s.open_stream()
    s.wait_stanza(STREAM_NS, "features", "stream features after restart")
    s.send("<iq type='set' id='bind1'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
           % (BIND_NS, resource))
    result = s.wait_stanza("jabber:client", "iq", "bind result", id="bind1")
    if result.attrs.get("type") != "result":
        raise RuntimeError("bind failed for %s" % user)
    return result.find(BIND_NS, "bind").find(BIND_NS, "jid").text()


def xml_attr(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def xml_text(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def play_session(args):
    alice = Session(args.host, args.port, args.domain)
    alice_jid = login(alice, args.user, args.password, "capture")
    alice.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
    alice.wait_stanza("jabber:client", "iq", "roster result", id="roster1")
    alice.send("<presence><status>capturing</status></presence>")
    # The server echoes the initial presence to the sender's own resource.
    alice.wait_stanza("jabber:client", "presence", "own presence")

    bob = Session(args.host, args.port, args.domain)
    login(bob, args.peer, args.peer_password, "sender")
    bob.send("<message to='%s' type='chat' id='%s' xml:lang='en'><body>%s</body></message>"
             % (xml_attr(alice_jid), xml_attr(MESSAGE_ID), xml_text(MESSAGE_BODY)))
    got = alice.wait_stanza("jabber:client", "message", "bob's message")
    body = got.find("jabber:client", "body")
    if body is None or body.text() != MESSAGE_BODY:
        raise RuntimeError("message body came back changed: %r" % (body and body.text()))
    bob.send("</stream:stream>")
    bob.drain_until_eof(5)
    bob.close()

    alice.send("<iq type='get' id='ping1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
               % args.domain)
    alice.wait_stanza("jabber:client", "iq", "ping result", id="ping1")
    alice.send("</stream:stream>")
    alice.wait(lambda k, e: k == "close", "the server's </stream:stream>")
    alice.drain_until_eof(5)
    alice.close()
    return bytes(alice.received)


def play_error(args):
    s = Session(args.host, args.port, args.domain)
    s.open_stream(to="unknown.example")
    s.wait_stanza(STREAM_NS, "error", "stream error")
    s.drain_until_eof(5)
    s.close()
    return bytes(s.received)


def save_capture(out, data):
    xml_path = out + ".xml"
    with open(xml_path, "wb") as f:
        f.write(data)
    canon_path, lines = write_canon(xml_path)
    print("%s: %d bytes; %s: %d events" % (xml_path, len(data), canon_path, len(lines)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("session", "error"):
        p = sub.add_parser(name)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--domain", default="localhost")
        p.add_argument("--user", default="alice")
        p.add_argument("--password", default="alicepass")
        p.add_argument("--peer", default="bob")
        p.add_argument("--peer-password", default="bobpass")
        p.add_argument("--out", required=True, help="path without .xml")
    p = sub.add_parser("canon")
    p.add_argument("files", nargs="+")
    args = ap.parse_args()

    if args.command == "canon":
        for path in args.files:
            canon_path, lines = write_canon(path)
            print("%s: %d events" % (canon_path, len(lines)))
    elif args.command == "session":
        save_capture(args.out, play_session(args))
    else:
        save_capture(args.out, play_error(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
