#!/usr/bin/env python3
"""An independent implementation of the kgr frame format, written from
docs/protocol.md alone (standard library + the openssl CLI for AES-CTR).
It checks every frame, clear frame and derivation in docs/test-vectors.json:
header grammar, HMAC-SHA256 over header||ciphertext, AES-256-CTR
decryption, the body grammar of each type against the listed fields, and
HKDF / NTAG. Exit status 0 only if every vector checks."""
import hashlib, hmac, json, struct, subprocess, sys

def aes_ctr(key, iv, data):
    if not data:
        return b""
    return subprocess.run(["openssl", "enc", "-aes-256-ctr", "-nosalt", "-nopad",
                           "-K", key.hex(), "-iv", iv.hex()],
                          input=data, capture_output=True, check=True).stdout

def hkdf(ikm, salt, info, n):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t; i += 1
    return out[:n]

HEADER = struct.Struct(">BBBIIQQ16sI")  # 47 bytes

def parse_header(b):
    v, t, flags, sender, kv, ctr, rid, iv, blen = HEADER.unpack_from(b)
    return dict(version=v, type=t, flags=flags, sender="%08x" % sender,
                key_version=kv, counter=ctr, request_id=rid), iv, blen

def ids(b, o):
    (n,) = struct.unpack_from(">H", b, o); o += 2
    return ["%08x" % x for x in struct.unpack_from(">%dI" % n, b, o)], o + 4 * n

def h32(b, o): return "%08x" % struct.unpack_from(">I", b, o)[0]
def u32(b, o): return struct.unpack_from(">I", b, o)[0]

def openssl(args, data):
    return subprocess.run(["openssl"] + args, input=data, capture_output=True,
                          check=True).stdout.decode()

def check_csr(der):
    """cert_renew_req: a PKCS#10 (DER) whose signature verifies, for
    O=kgr/OU=kgr-node/CN=n<8 hex> (section 11), 1..433 bytes."""
    assert 1 <= len(der) <= 433, "csr size"
    subject = openssl(["req", "-inform", "DER", "-noout", "-verify", "-subject",
                       "-nameopt", "compat"], der)
    assert "/O=kgr/OU=kgr-node/CN=n" in subject, subject

def check_chain(pem):
    """cert_renew_ans: PEM certificates, the first for a node's CN."""
    assert 1 <= len(pem) <= 16384, "chain size"
    subject = openssl(["x509", "-noout", "-subject", "-nameopt", "compat"], pem)
    assert "/O=kgr/OU=kgr-node/CN=n" in subject, subject

def name8(b, o):
    n = b[o]
    return b[o + 1:o + 1 + n].decode("ascii"), o + 1 + n

def parse_group_body(t, b):
    """Group bodies of docs/protocol.md section 14 (0x13, 0x15, 0x16,
    0x28..0x2F): (fields, end)."""
    if t in (0x13, 0x16):
        (plen,) = struct.unpack_from(">H", b, 61)
        o = 63 + plen
        (n,) = struct.unpack_from(">I", b, o); o += 4
        members = []
        for _ in range(n):
            members.append(dict(n_id=h32(b, o), sign_public=b[o + 4:o + 36].hex()))
            o += 36
        return dict(group_id=h32(b, 0), key_version=u32(b, 4), mode=b[8],
                    rekey_topic=b[9:19].hex(), data_topic=b[19:29].hex(),
                    ks_sign_public=b[29:61].hex(), path=b[63:63 + plen].hex(),
                    members=members), o
    if t == 0x15:
        return dict(group_id=h32(b, 0), have_version=u32(b, 4),
                    sign_public=b[8:40].hex()), 40
    if t == 0x28:
        name, o = name8(b, 0)
        p, end = ids(b, o + 5)
        return dict(name=name, mode=b[o], lifetime_s=u32(b, o + 1), members=p), end
    if t in (0x29, 0x2B, 0x2F):
        msg, end = name8(b, 9)
        return dict(status=b[0], group_id=h32(b, 1), key_version=u32(b, 5),
                    message=msg), end
    if t == 0x2A:
        name, o = name8(b, 0)
        p, end = ids(b, o + 1)
        return dict(name=name, add=b[o], members=p), end
    if t == 0x2C:
        return dict(after=h32(b, 0), member_after=h32(b, 4)), 8
    if t == 0x2D:
        (n,) = struct.unpack_from(">H", b, 2)
        o, groups = 4, []
        for _ in range(n):
            gid = h32(b, o)
            name, o = name8(b, o + 4)
            p, end = ids(b, o + 9)
            groups.append(dict(group_id=gid, name=name, mode=b[o],
                               lifetime_s=u32(b, o + 1), key_version=u32(b, o + 5),
                               members=p))
            o = end
        return dict(status=b[0], more=b[1], groups=groups), o
    if t == 0x2E:
        name, end = name8(b, 0)
        return dict(name=name), end
    raise ValueError("type %d" % t)

def parse_body(t, b):
    """Body grammars of docs/protocol.md section 2 and 4."""
    f = {}
    if t in (0x13, 0x15, 0x16) or 0x28 <= t <= 0x2F:
        f, end = parse_group_body(t, b)
    elif t == 0x01: f = dict(n_id=h32(b, 0), ntag=b[4:36].hex(), topic2=b[36:46].hex()); end = 46
    elif t == 0x02: f = dict(nksk=b[0:64].hex(), topic1=b[64:74].hex()); end = 74
    elif t == 0x03: f = dict(n_id2=h32(b, 0), version=u32(b, 4), topic3=b[8:18].hex()); end = 18
    elif t == 0x04: f = dict(n_id1=h32(b, 0), n_id2=h32(b, 4), version=u32(b, 8), nnsk=b[12:76].hex()); end = 76
    elif t == 0x05: f = dict(n_id1=h32(b, 0), version=u32(b, 4), nnsk=b[8:72].hex(), topic3=b[72:82].hex()); end = 82
    elif t in (0x06, 0x07): f = dict(n_id1=h32(b, 0), n_id2=h32(b, 4), topic4=b[8:18].hex()); end = 18
    elif t == 0x08: f = dict(n_id2=h32(b, 0)); end = 4
    elif t == 0x09: f = dict(refused_type=b[0], code=b[1]); end = 2
    elif t == 0x0A: f = dict(peer=h32(b, 0), reason=b[4]); end = 5
    elif t == 0x26: f = dict(n_id=h32(b, 0)); end = 4
    elif t == 0x0B: f = dict(node_public=b[0:32].hex()); end = 32
    elif t == 0x0C: f = dict(ks_public=b[0:32].hex(), version=u32(b, 32)); end = 36
    elif t == 0x0D: f = {}; end = 0
    elif t == 0x0E: f = dict(csr=b.hex()); end = len(b); check_csr(b)
    elif t == 0x0F: f = dict(chain=b.decode("ascii")); end = len(b); check_chain(b)
    elif t in (0x10, 0x11): f = dict(n_id2=h32(b, 0), data=b[4:].hex()); end = len(b)
    elif t == 0x20: p, end = ids(b, 0); f = dict(peers=p)
    elif t == 0x21:
        f = dict(status=b[0], n_id=h32(b, 1), entry_no=struct.unpack_from(">H", b, 5)[0],
                 ntag=b[7:39].hex(), ks_topic1=b[39:49].hex(), ks_n_id=h32(b, 49)); end = 53
    elif t == 0x22:
        p, end = ids(b, 5); f = dict(n_id=h32(b, 0), allow=b[4], peers=p)
    else: raise ValueError("type %d" % t)
    if end != len(b): raise ValueError("trailing bytes")
    return f

def check_frame(v):
    frame = bytes.fromhex(v["frame"])
    hdr, iv, blen = parse_header(frame)
    assert hdr["version"] == 1
    assert len(frame) == 47 + blen + 32, "length"
    for k, x in v["header"].items():
        assert hdr[k] == x, (k, hdr[k], x)
    assert iv.hex() == v["iv"]
    enc, mac = bytes.fromhex(v["enc_key"]), bytes.fromhex(v["mac_key"])
    tag = hmac.new(mac, frame[:-32], hashlib.sha256).digest()
    assert hmac.compare_digest(tag, frame[-32:]), "tag"
    body = aes_ctr(enc, iv, frame[47:-32])
    assert body.hex() == v["body"], "body"
    assert parse_body(hdr["type"], body) == v["fields"], "fields"

def check_clear(v):
    frame = bytes.fromhex(v["frame"])
    hdr, iv, blen = parse_header(frame)
    assert iv == bytes(16) and len(frame) == 47 + blen
    body = frame[47:]
    assert body.hex() == v["body"]
    assert parse_body(hdr["type"], body) == v["fields"], v["name"]

def check_derivations(ds):
    for d in ds:
        if d["name"] == "registration_keys":
            ntag = bytes.fromhex(d["ntag"]); nid = bytes.fromhex(d["n_id"])
            for label in ("nksk_key_req", "nksk_key_ans"):
                okm = hkdf(ntag, b"kgr/v1 registration", label.encode() + nid, 64)
                assert okm[:32].hex() == d[label]["enc_key"], label
                assert okm[32:].hex() == d[label]["mac_key"], label
        elif d["name"] == "rotation_keys":
            info = bytes.fromhex(d["n_id"]) + struct.pack(">I", d["version"]) + \
                bytes.fromhex(d["node_public"]) + bytes.fromhex(d["ks_public"])
            okm = hkdf(bytes.fromhex(d["shared"]), b"kgr/v1 nksk rotation", info, 64)
            assert okm.hex() == d["keys"], "rotation keys"
        elif d["name"] == "registration_request_id":
            h = hashlib.sha256(b"kgr/v1 registration request" + bytes.fromhex(d["ntag"])).digest()
            assert struct.unpack(">Q", h[:8])[0] == d["request_id"]
        elif d["name"] == "ntag":
            m = bytes.fromhex(d["n_id"]) + bytes.fromhex(d["kedk_public"]) + \
                struct.pack(">H", d["entry_no"]) + bytes.fromhex(d["salt"])
            assert hashlib.sha256(m).hexdigest() == d["ntag"]

def check_record(v):
    """docs/protocol.md section 7 (record envelope and per-type grammar)."""
    rec = bytes.fromhex(v["record"])
    nk, nksign = bytes.fromhex(v["nk"]), bytes.fromhex(v["nksign"])
    owner = bytes.fromhex(v["owner_n_id"])
    ver, typ, key = struct.unpack_from(">BBQ", rec, 0); o = 10
    (clen,) = struct.unpack_from(">H", rec, o); o += 2
    clear = rec[o:o + clen]; o += clen
    iv = rec[o:o + 16]; o += 16
    (ctlen,) = struct.unpack_from(">H", rec, o); o += 2
    ct = rec[o:o + ctlen]; o += ctlen
    tag = rec[o:]
    assert ver == 1 and len(tag) == 32 and iv.hex() == v["iv"]
    context = b"KGR-REC1" + owner + hashlib.sha256(b"KGR-NK-CHECK" + nk).digest()
    assert hmac.compare_digest(hmac.new(nksign, context + rec[:-32], hashlib.sha256).digest(), tag), "record tag"
    sec = aes_ctr(nk, iv, ct)
    flags, s = sec[0], 1
    f = v["fields"]
    def topic(bit):
        nonlocal s
        if not flags & bit: return None
        t = sec[s:s + 10].hex(); s += 10; return t
    if typ == 1:
        entry, state, last, kv, reg, npeers = struct.unpack_from(">HBQIQH", clear, 0)
        peers = ["%08x" % x for x in struct.unpack_from(">%dI" % npeers, clear, 25)]
        assert len(clear) == 25 + 4 * npeers
        got = dict(n_id="%08x" % key, entry_no=entry, state=state, allowed_peers=peers,
                   last_counter=last, nksk_version=kv, registered_unix_ms=reg,
                   ntag=sec[1:33].hex())
        s = 33
        if flags & 1: got["nksk"] = sec[s:s + 64].hex(); s += 64
        got["topic2"] = topic(2)
    elif typ == 2:
        n1, ctime, step, renewal, version = struct.unpack_from(">IQBBI", clear, 0)
        got = dict(n_id1="%08x" % n1, request_id=key, ctime_unix_ms=ctime, step=step,
                   renewal=renewal, version=version, n_id2=sec[1:5].hex(), nnsk=sec[5:69].hex())
        s = 69
        got["topic3"] = topic(2); got["topic4"] = topic(4)
    elif typ == 3:
        ctime, kv, frames, nbytes, rx = struct.unpack_from(">QIQQQ", clear, 0)
        assert len(clear) == 36
        got = dict(n_id="%08x" % key, ctime_unix_ms=ctime, key_version=kv,
                   frames_sent=frames, bytes_sent=nbytes, rx_counter=rx)
        if flags & 1: got["nnsk"] = sec[s:s + 64].hex(); s += 64
        got["topic3"] = topic(2); got["topic4"] = topic(4)
    else:
        raise ValueError("record type")
    assert s == len(sec), "trailing secret bytes"
    assert got == f, (v["name"], got, f)

# ---- group keys (docs/protocol.md section 12) ----

def ed25519_verify(public, message, signature):
    """Ed25519 with the openssl CLI (the key as a SubjectPublicKeyInfo)."""
    import base64, os, tempfile
    spki = bytes.fromhex("302a300506032b6570032100") + public
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(spki) + \
        b"\n-----END PUBLIC KEY-----\n"
    with tempfile.TemporaryDirectory() as d:
        for name, data in (("k.pem", pem), ("m", message), ("s", signature)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                            os.path.join(d, "k.pem"), "-rawin", "-in",
                            os.path.join(d, "m"), "-sigfile", os.path.join(d, "s")],
                           capture_output=True)
    return r.returncode == 0

def group_kek(secret, group_id, level, position, version):
    return hkdf(secret, b"kgr/v1 group kek",
                struct.pack(">IBII", group_id, level, position, version), 64)

def group_unwrap(kek, place, wrapped):
    """place = (group_id, epoch, level, position, version, slot, child_version)"""
    aad = b"kgr/v1 group wrap" + struct.pack(">IIBIIBI", *place)
    iv, ct, tag = wrapped[:16], wrapped[16:48], wrapped[48:]
    want = hmac.new(kek[32:], aad + iv + ct, hashlib.sha256).digest()
    assert hmac.compare_digest(want, tag), "wrap tag"
    return aes_ctr(kek[:32], iv, ct)

def parse_group_path(b):
    gid, epoch, depth, leaf = struct.unpack_from(">IIBI", b, 0); o = 13
    keys = []
    for _ in range(depth + 1):
        keys.append(dict(version=u32(b, o), secret=b[o + 4:o + 36].hex())); o += 36
    assert o == len(b), "group_path length"
    return dict(group_id=gid, epoch=epoch, depth=depth, leaf_position=leaf, keys=keys)

def check_group_rekey_frame(v):
    frame = bytes.fromhex(v["frame"])
    hdr, iv, blen = parse_header(frame)
    assert hdr["type"] == 0x12 and iv == bytes(16), "rekey header"
    assert len(frame) == 47 + blen + 64, "rekey length"
    for k, x in v["header"].items():
        assert hdr[k] == x, (k, hdr[k], x)
    assert ed25519_verify(bytes.fromhex(v["ks_public"]),
                          b"kgr/v1 group_rekey" + frame[:-64], frame[-64:]), "signature"
    b = frame[47:-64]
    gid, epoch, depth, part, parts, count = struct.unpack_from(">IIBHHH", b, 0); o = 15
    entries = []
    for _ in range(count):
        level, pos, ver, slot = struct.unpack_from(">BIIB", b, o); o += 10
        entries.append(dict(level=level, position=pos, version=ver, child_slot=slot,
                            wrapped=b[o:o + 80].hex())); o += 80
    assert o == len(b), "rekey trailing bytes"
    assert dict(group_id=gid, epoch=epoch, depth=depth, part=part, parts=parts,
                entries=entries) == v["fields"], "rekey fields"
    # Member 1 applies it: walk up from its leaf, open what changed.
    before = parse_group_path(bytes.fromhex(v["member_1_before"]["encoded"]))
    after = parse_group_path(bytes.fromhex(v["member_1_after"]["encoded"]))
    assert before == {k: x for k, x in v["member_1_before"].items() if k != "encoded"}
    keys = [dict(k) for k in before["keys"]]
    leaf = before["leaf_position"]
    for level in range(1, depth + 1):
        mine = [e for e in entries if e["level"] == level and
                e["position"] == leaf >> (2 * level) and
                e["child_slot"] == (leaf >> (2 * (level - 1))) % 4]
        if not mine:
            continue
        e, child = mine[0], keys[level - 1]
        kek = group_kek(bytes.fromhex(child["secret"]), gid, level - 1,
                        leaf >> (2 * (level - 1)), child["version"])
        place = (gid, epoch, level, e["position"], e["version"], e["child_slot"],
                 child["version"])
        keys[level] = dict(version=e["version"],
                           secret=group_unwrap(kek, place, bytes.fromhex(e["wrapped"])).hex())
    assert keys == after["keys"], "member 1's keys after the rekey"
    data = hkdf(bytes.fromhex(keys[-1]["secret"]), b"kgr/v1 group data",
                struct.pack(">II", gid, epoch), 64)
    assert data.hex() == v["data_keys_after"], "group data keys"

def check_group(g):
    for d in g["derivations"]:
        if d["name"] == "group_kek":
            got = group_kek(bytes.fromhex(d["secret"]), d["group_id"], d["level"],
                            d["position"], d["version"])
        else:
            got = hkdf(bytes.fromhex(d["root_secret"]), b"kgr/v1 group data",
                       struct.pack(">II", d["group_id"], d["epoch"]), 64)
        assert got.hex() == d["keys"], d["name"]
    w = g["wrap"]
    kek = group_kek(bytes.fromhex(w["child_secret"]), w["group_id"], w["level"] - 1,
                    w["child_position"], w["child_version"])
    wrapped = bytes.fromhex(w["wrapped"])
    assert wrapped[:16].hex() == w["iv"]
    place = (w["group_id"], w["epoch"], w["level"], w["position"], w["version"],
             w["child_slot"], w["child_version"])
    assert group_unwrap(kek, place, wrapped).hex() == w["secret"], "wrap"
    check_group_rekey_frame(g["rekey"])
    return len(g["derivations"]) + 2
def check_group_data(v):
    """docs/protocol.md section 12: K from the group key, the tag, the body,
    and in mode 1 the Ed25519 signature over the signed bytes."""
    frame = bytes.fromhex(v["frame"])
    hdr, iv, blen = parse_header(frame)
    assert hdr["type"] == 0x14 and hdr["flags"] == 0
    assert len(frame) == 47 + blen + 32, "length"
    for k, x in v["header"].items():
        assert hdr[k] == x, (k, hdr[k], x)
    gid = bytes.fromhex(v["group_id"])
    okm = hkdf(bytes.fromhex(v["group_key"]), b"kgr/v1 group data",
               gid + struct.pack(">I", hdr["key_version"]), 64)
    assert okm.hex() == v["enc_key"] + v["mac_key"], "group data keys"
    tag = hmac.new(okm[32:], frame[:-32], hashlib.sha256).digest()
    assert hmac.compare_digest(tag, frame[-32:]), "tag"
    body = aes_ctr(okm[:32], iv, frame[47:-32])
    assert body[:4] == gid and body[4] == v["mode"], "group id, mode"
    data = body[5 + (64 if v["mode"] == 1 else 0):]
    assert data.hex() == v["data"], "data"
    if v["mode"] == 1:
        signed = (b"kgr/v1 group_data" + bytes([1, 0x14, 0]) +
                  frame[3:27] + gid + bytes([1]) + data)
        assert signed.hex() == v["signed"], "signed bytes"
        assert body[5:69].hex() == v["signature"], "signature in body"
        assert ed25519_verify(bytes.fromhex(v["ed25519_public"]), signed,
                              body[5:69]), "Ed25519 signature"

def main(path):
    vec = json.load(open(path))
    n = 0
    check_derivations(vec["derivations"]); n += len(vec["derivations"])
    for v in vec["frames"]:
        check_frame(v); n += 1
    for v in vec["clear_frames"]:
        check_clear(v); n += 1
    for v in vec["records"]:
        check_record(v); n += 1
    n += check_group(vec["group_rekey"])
    for v in vec.get("group_data", []):
        check_group_data(v); n += 1
    print("check_vectors: %d vectors checked independently" % n)

if __name__ == "__main__":
    main(sys.argv[1])
