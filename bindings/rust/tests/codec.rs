//! The hand-written codec against common/wire.c, the protobuf-c code of the daemon and
//! libsendfiled: a small C program (tests/c/wire-vectors.c) built against the meson build
//! tree encodes the same requests and replies, and decodes what Rust encodes.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use sendfiled::wire::{Request, Response};
use sendfiled::{Method, Status};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Build the C program; its absence of a build tree fails the test.
fn vectors_program(dir: &TempDir) -> std::path::PathBuf {
    let build = build_dir();
    let src = source_dir();
    let out = dir.path().join("wire-vectors");
    let common_lib = build.join("common/libsfdcommon.a");
    let proto_lib = build.join("proto/libsfdproto.a");
    for f in [&common_lib, &proto_lib] {
        assert!(
            f.exists(),
            "{} is missing: build the C tree first",
            f.display()
        );
    }
    let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-std=gnu11")
        .arg("-I")
        .arg(src.join("common"))
        .arg(src.join("bindings/rust/tests/c/wire-vectors.c"))
        .arg(&common_lib)
        .arg(&proto_lib)
        .arg("-lprotobuf-c")
        .arg("-o")
        .arg(&out)
        .status()
        .expect("cannot run the C compiler");
    assert!(st.success(), "compiling wire-vectors.c failed");
    out
}

fn run_c(prog: &std::path::Path, input: &str) -> Vec<String> {
    let mut child = Command::new(prog)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "wire-vectors failed: {:?}",
        out.status
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// xorshift64*: the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Values around the varint length boundaries, and anything.
    fn value(&mut self) -> u64 {
        const EDGES: [u64; 10] = [
            0,
            1,
            127,
            128,
            16383,
            16384,
            (1 << 32) - 1,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX,
        ];
        match self.next() % 3 {
            0 => EDGES[(self.next() % 10) as usize],
            1 => self.next() >> (self.next() % 64),
            _ => self.next(),
        }
    }
}

fn requests() -> Vec<Request> {
    let mut rng = Rng(0x5eed_f11e);
    let mut out = Vec::new();
    for i in 0..600 {
        let id = rng.value().max(1);
        out.push(match i % 3 {
            0 => Request::Sendfile {
                id,
                offset: rng.value(),
                count: (rng.next() & 1 == 0).then(|| rng.value()),
                fallback: rng.next() & 1 == 0,
            },
            1 => Request::Cancel {
                id,
                target: rng.value(),
            },
            _ => Request::Ping { id },
        });
    }
    out
}

#[test]
fn requests_encode_as_in_c() {
    let dir = TempDir::new("codec");
    let prog = vectors_program(&dir);
    let reqs = requests();
    let mut input = String::new();
    for r in &reqs {
        input += &match *r {
            Request::Sendfile {
                id,
                offset,
                count,
                fallback,
            } => format!(
                "req {id} s {offset} {} {} {} 0\n",
                count.is_some() as u8,
                count.unwrap_or(0),
                fallback as u8
            ),
            Request::Cancel { id, target } => format!("req {id} c 0 0 0 1 {target}\n"),
            Request::Ping { id } => format!("req {id} p 0 0 0 1 0\n"),
        };
    }
    for r in &reqs {
        input += &format!("decreq {}\n", hex(&r.encode()));
    }
    let out = run_c(&prog, &input);
    assert_eq!(out.len(), 2 * reqs.len());
    for (r, c_hex) in reqs.iter().zip(&out) {
        assert_eq!(hex(&r.encode()), *c_hex, "{r:?}");
    }
    for (r, dec) in reqs.iter().zip(&out[reqs.len()..]) {
        let want = match *r {
            Request::Sendfile {
                id,
                offset,
                count,
                fallback,
            } => format!(
                "{id} 1 1 {offset} {} {} {} 0",
                count.is_some() as u8,
                count.unwrap_or(0),
                fallback as u8
            ),
            Request::Cancel { id, target } => format!("{id} 1 2 0 0 0 0 {target}"),
            Request::Ping { id } => format!("{id} 1 3 0 0 0 0 0"),
        };
        assert_eq!(*dec, want, "{r:?}");
    }
}

#[test]
fn replies_from_c_decode() {
    let dir = TempDir::new("codec");
    let prog = vectors_program(&dir);
    let mut rng = Rng(0xdec0de);
    let messages = [
        "",
        "peer closed the connection",
        "fallback disabled: not a regular file (ü, ∞)",
        &"x".repeat(255),
    ];
    let mut cases = Vec::new();
    for i in 0..400 {
        cases.push(Response {
            id: rng.value(),
            status: (rng.next() % 11) as i32,
            error: (rng.next() % 134) as i32,
            message: messages[i % messages.len()].to_string(),
            bytes_sent: rng.value(),
            final_offset: rng.value(),
            method: (rng.next() % 5) as i32,
            short_source: rng.next() & 1 == 0,
            ping: None,
        });
    }
    let mut input = String::new();
    for c in &cases {
        let msg = if c.message.is_empty() {
            "-".to_string()
        } else {
            hex(c.message.as_bytes())
        };
        input += &format!(
            "resp {} {} {} {} {} {} {} {msg}\n",
            c.id, c.status, c.error, c.bytes_sent, c.final_offset, c.method, c.short_source as u8
        );
    }
    let out = run_c(&prog, &input);
    assert_eq!(out.len(), cases.len());
    for (c, rec) in cases.iter().zip(&out) {
        let got = Response::decode(&unhex(rec)).unwrap();
        assert_eq!(got, *c, "{rec}");
        assert_eq!(got.status(), Status::from_wire(c.status));
        assert_eq!(got.method(), Method::from_wire(c.method));
    }
}
