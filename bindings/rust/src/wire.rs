//! The protobuf encoding of the data-plane records (`proto/sendfiled.proto`, package
//! `sendfiled.v1`), by hand: a request is at most a few dozen bytes and a reply a few
//! hundred, and the schema has nine scalar fields, so a generated codec and its runtime
//! would weigh more than they save.
//!
//! Encoding follows libsendfiled's: default values are left out (an `offset` of 0, a
//! `fallback` of true), and the oneof member is always present, even when empty. Decoding
//! follows protobuf's rules: unknown fields are skipped, a repeated scalar field keeps its
//! last value, and a field with the wrong wire type makes the record invalid.

use crate::{Method, Status};

/// The largest record either side sends or accepts (`WIRE_MAX_RECORD`).
pub const MAX_RECORD: usize = 4096;

const WT_VARINT: u64 = 0;
const WT_I64: u64 = 1;
const WT_LEN: u64 = 2;
const WT_I32: u64 = 5;

/// One request, as sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Send a range of the source to the destination (two descriptors go with it).
    Sendfile {
        /// Request id, 1 and up.
        id: u64,
        /// Start of the range.
        offset: u64,
        /// Bytes to send; `None` is "to end of file".
        count: Option<u64>,
        /// Allow the user-space copy.
        fallback: bool,
    },
    /// Stop the transfer with id `target` on the same connection.
    Cancel {
        /// Request id, 1 and up.
        id: u64,
        /// The id of the `Sendfile` to stop.
        target: u64,
    },
    /// Liveness probe.
    Ping {
        /// Request id, 1 and up.
        id: u64,
    },
}

/// One reply, as the daemon sends it. Absent fields read as protobuf's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The id of the request answered; 0 for a reply about the connection itself.
    pub id: u64,
    /// The wire value of `Status` (0, `OK`, when absent).
    pub status: i32,
    /// A positive errno, 0 when none.
    pub error: i32,
    /// The daemon's explanation, for people.
    pub message: String,
    /// Bytes sent, on every outcome.
    pub bytes_sent: u64,
    /// `offset + bytes_sent`.
    pub final_offset: u64,
    /// The wire value of `Method` (0, none, when absent).
    pub method: i32,
    /// The source ended before the requested range did.
    pub short_source: bool,
    /// A Ping's reply only: who answered (`PingInfo`, field 9).
    pub ping: Option<PingInfo>,
}

/// The `PingInfo` of a Ping's reply, as it is on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PingInfo {
    /// The data-plane protocol's version.
    pub protocol_version: u32,
    /// The daemon's own version string.
    pub daemon_version: String,
    /// The wire values of the `Feature`s the daemon lists, in its order, unknown ones
    /// included.
    pub features: Vec<i32>,
}

impl PingInfo {
    fn decode(buf: &[u8]) -> Result<PingInfo, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let mut info = PingInfo::default();
        while r.pos < buf.len() {
            let key = r.varint()?;
            let (field, wire_type) = (key >> 3, key & 7);
            if field == 0 || field > u64::from(u32::MAX >> 3) {
                return Err(DecodeError("bad field number"));
            }
            match (field, wire_type) {
                (1, WT_VARINT) => info.protocol_version = r.varint()? as u32,
                (2, WT_LEN) => {
                    let n = r.varint()?;
                    info.daemon_version = std::str::from_utf8(r.skip(n)?)
                        .map_err(|_| DecodeError("daemon_version is not UTF-8"))?
                        .to_owned();
                }
                // A repeated enum: one value per field, or packed into one.
                (3, WT_VARINT) => info.features.push(r.varint()? as i32),
                (3, WT_LEN) => {
                    let n = r.varint()?;
                    let mut packed = Reader {
                        buf: r.skip(n)?,
                        pos: 0,
                    };
                    while packed.pos < packed.buf.len() {
                        info.features.push(packed.varint()? as i32);
                    }
                }
                (1..=3, _) => return Err(DecodeError("field with the wrong wire type")),
                (_, WT_VARINT) => {
                    r.varint()?;
                }
                (_, WT_I64) => {
                    r.skip(8)?;
                }
                (_, WT_I32) => {
                    r.skip(4)?;
                }
                (_, WT_LEN) => {
                    let n = r.varint()?;
                    r.skip(n)?;
                }
                _ => return Err(DecodeError("unsupported wire type")),
            }
        }
        Ok(info)
    }
}

/// A record that does not parse as a `Response`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sendfiled record: {0}")]
pub struct DecodeError(pub &'static str);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(out, (field << 3) | wire_type);
}

fn put_message(out: &mut Vec<u8>, field: u64, body: &[u8]) {
    put_key(out, field, WT_LEN);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

impl Request {
    /// The request's id.
    pub fn id(&self) -> u64 {
        match *self {
            Request::Sendfile { id, .. } | Request::Cancel { id, .. } | Request::Ping { id } => id,
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        let mut body = Vec::with_capacity(24);
        put_key(&mut out, 1, WT_VARINT);
        put_varint(&mut out, self.id());
        match *self {
            Request::Sendfile {
                offset,
                count,
                fallback,
                ..
            } => {
                if offset != 0 {
                    put_key(&mut body, 1, WT_VARINT);
                    put_varint(&mut body, offset);
                }
                if let Some(count) = count {
                    put_key(&mut body, 2, WT_VARINT);
                    put_varint(&mut body, count);
                }
                if !fallback {
                    put_key(&mut body, 3, WT_VARINT);
                    put_varint(&mut body, 0);
                }
                put_message(&mut out, 2, &body);
            }
            Request::Cancel { target, .. } => {
                put_key(&mut body, 1, WT_VARINT);
                put_varint(&mut body, target);
                put_message(&mut out, 3, &body);
            }
            Request::Ping { .. } => put_message(&mut out, 4, &body),
        }
        out
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError("truncated varint"));
            };
            self.pos += 1;
            // The tenth byte carries bit 63 only; protobuf ignores what else it has.
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than ten bytes"))
    }

    fn skip(&mut self, n: u64) -> Result<&[u8], DecodeError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(DecodeError("field runs past the end of the record"));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }
}

impl Response {
    /// Parse one record.
    pub fn decode(buf: &[u8]) -> Result<Response, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let mut resp = Response::default();
        while r.pos < buf.len() {
            let key = r.varint()?;
            let (field, wire_type) = (key >> 3, key & 7);
            if field == 0 || field > u64::from(u32::MAX >> 3) {
                return Err(DecodeError("bad field number"));
            }
            let known_varint = matches!(field, 1 | 2 | 3 | 5 | 6 | 7 | 8);
            let known_len = matches!(field, 4 | 9);
            if known_varint && wire_type != WT_VARINT || known_len && wire_type != WT_LEN {
                return Err(DecodeError("field with the wrong wire type"));
            }
            match wire_type {
                WT_VARINT => {
                    let v = r.varint()?;
                    match field {
                        1 => resp.id = v,
                        // int32 and enums are sign-extended to 64 bits on the wire.
                        2 => resp.status = v as i32,
                        3 => resp.error = v as i32,
                        5 => resp.bytes_sent = v,
                        6 => resp.final_offset = v,
                        7 => resp.method = v as i32,
                        8 => resp.short_source = v != 0,
                        _ => {}
                    }
                }
                WT_I64 => {
                    r.skip(8)?;
                }
                WT_I32 => {
                    r.skip(4)?;
                }
                WT_LEN => {
                    let n = r.varint()?;
                    let bytes = r.skip(n)?;
                    if field == 4 {
                        resp.message = std::str::from_utf8(bytes)
                            .map_err(|_| DecodeError("message is not UTF-8"))?
                            .to_owned();
                    } else if field == 9 {
                        resp.ping = Some(PingInfo::decode(bytes)?);
                    }
                }
                _ => return Err(DecodeError("unsupported wire type")),
            }
        }
        Ok(resp)
    }

    /// The status, as the enum.
    pub fn status(&self) -> Status {
        Status::from_wire(self.status)
    }

    /// The method, as the enum.
    pub fn method(&self) -> Method {
        Method::from_wire(self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    // The examples of docs/PROTOCOL.md, section 3.
    #[test]
    fn protocol_examples() {
        let cases = [
            (
                Request::Sendfile {
                    id: 1,
                    offset: 0,
                    count: None,
                    fallback: true,
                },
                "08 01 12 00",
            ),
            (
                Request::Sendfile {
                    id: 1,
                    offset: 0,
                    count: Some(1 << 20),
                    fallback: true,
                },
                "08 01 12 04 10 80 80 40",
            ),
            (
                Request::Sendfile {
                    id: 7,
                    offset: 4096,
                    count: Some(1000),
                    fallback: false,
                },
                "08 07 12 08 08 80 20 10 e8 07 18 00",
            ),
            (Request::Cancel { id: 2, target: 1 }, "08 02 1a 02 08 01"),
            (Request::Ping { id: 3 }, "08 03 22 00"),
        ];
        for (req, bytes) in cases {
            assert_eq!(req.encode(), hex(bytes), "{req:?}");
        }
        let resp = Response::decode(&hex("08 01 28 80 80 40 30 80 80 40 38 01")).unwrap();
        assert_eq!(
            resp,
            Response {
                id: 1,
                bytes_sent: 1 << 20,
                final_offset: 1 << 20,
                method: 1,
                ..Response::default()
            }
        );
        assert_eq!(resp.status(), Status::Ok);
        assert_eq!(resp.method(), Method::Sendfile);
    }

    // docs/PROTOCOL.md's Ping reply: id 3, OK, protocol 1, daemon 0.1.0, no features.
    #[test]
    fn ping_reply() {
        let r =
            Response::decode(&hex("08 03 28 00 30 00 4a 09 08 01 12 05 30 2e 31 2e 30")).unwrap();
        let want = PingInfo {
            protocol_version: 1,
            daemon_version: "0.1.0".into(),
            features: vec![],
        };
        assert_eq!((r.id, r.ping), (3, Some(want)));
        // Features unpacked and packed, an unknown one and an unknown field kept apart.
        let r = Response::decode(&hex("08 04 4a 0a 18 01 1a 02 04 07 18 02 28 05")).unwrap();
        assert_eq!(r.ping.unwrap().features, vec![1, 4, 7, 2]);
        assert!(Response::decode(&hex("08 04 4a 02 10 01")).is_err());
        assert!(Response::decode(&hex("08 04 48 01")).is_err());
    }

    #[test]
    fn large_values() {
        let req = Request::Sendfile {
            id: u64::MAX,
            offset: (1 << 63) - 1,
            count: Some(1),
            fallback: true,
        };
        let b = req.encode();
        assert_eq!(&b[..11], hex("08 ff ff ff ff ff ff ff ff ff 01").as_slice());
        assert!(b.len() <= MAX_RECORD);
    }

    #[test]
    fn unknown_fields_and_negative_values() {
        // id 5, a fixed64 field 20, status -1 as ten bytes, a string field 21, error 4.
        let mut rec = hex("08 05 a1 01 01 02 03 04 05 06 07 08");
        rec.extend(hex("10 ff ff ff ff ff ff ff ff ff 01"));
        rec.extend(hex("aa 01 02 68 69 18 04 65 00 00 00 00"));
        let r = Response::decode(&rec).unwrap();
        assert_eq!((r.id, r.status, r.error), (5, -1, 4));
        assert_eq!(r.status(), Status::Unknown(-1));
    }

    #[test]
    fn malformed() {
        for bad in [
            "08",                                  // truncated varint
            "22 05 61",                            // string past the end
            "08 ff ff ff ff ff ff ff ff ff ff 01", // varint too long
            "10 01 0b",                            // a group
            "0a 00",                               // id with the wrong wire type
            "00 01",                               // field 0
        ] {
            assert!(Response::decode(&hex(bad)).is_err(), "{bad}");
        }
        assert!(Response::decode(&hex("22 01 ff")).is_err());
    }
}
