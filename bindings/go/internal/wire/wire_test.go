package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	if s == "-" {
		return nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func num(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func snum(t *testing.T, s string) int32 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return int32(v)
}

// TestVectors compares the codec with records the C codec produced
// (testdata/vectors.c): requests must encode to the same bytes, replies
// must decode to the same values.
func TestVectors(t *testing.T) {
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var nreq, nresp int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		switch w[0] {
		case "req":
			r := Request{ID: num(t, w[1]), Op: Op(num(t, w[2])), Offset: num(t, w[3]),
				Count: num(t, w[4]), HasCount: w[5] == "1", NoFallback: w[6] == "0",
				Target: num(t, w[7])}
			got, err := AppendRequest(nil, &r)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			if want := unhex(t, w[8]); !bytes.Equal(got, want) {
				t.Errorf("%+v: got %x, want %x", r, got, want)
			}
			nreq++
		case "resp":
			want := Response{ID: num(t, w[1]), Status: snum(t, w[2]), Error: snum(t, w[3]),
				BytesSent: num(t, w[4]), FinalOffset: num(t, w[5]), Method: snum(t, w[6]),
				ShortSource: w[7] == "1", Message: string(unhex(t, w[8]))}
			got, err := DecodeResponse(unhex(t, w[9]))
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			if got != want {
				t.Errorf("%s: got %+v, want %+v", w[9], got, want)
			}
			nresp++
		default:
			t.Fatalf("bad line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if nreq < 50 || nresp < 100 {
		t.Fatalf("only %d requests and %d replies in testdata/vectors.txt", nreq, nresp)
	}
}

// The examples of docs/PROTOCOL.md, section 3.
func TestProtocolDocExamples(t *testing.T) {
	reqs := []struct {
		r    Request
		want string
	}{
		{Request{ID: 1, Op: OpSendfile}, "08 01 12 00"},
		{Request{ID: 1, Op: OpSendfile, Count: 1048576, HasCount: true}, "08 01 12 04 10 80 80 40"},
		{Request{ID: 7, Op: OpSendfile, Offset: 4096, Count: 1000, HasCount: true, NoFallback: true},
			"08 07 12 08 08 80 20 10 e8 07 18 00"},
		{Request{ID: 2, Op: OpCancel, Target: 1}, "08 02 1a 02 08 01"},
		{Request{ID: 3, Op: OpPing}, "08 03 22 00"},
	}
	for _, c := range reqs {
		got, err := AppendRequest(nil, &c.r)
		if err != nil || !bytes.Equal(got, unhex(t, c.want)) {
			t.Errorf("%+v: got %x, %v; want %s", c.r, got, err, c.want)
		}
	}
	got, err := DecodeResponse(unhex(t, "08 01 28 80 80 40 30 80 80 40 38 01"))
	want := Response{ID: 1, BytesSent: 1048576, FinalOffset: 1048576, Method: 1}
	if err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
}

func TestRequestWithoutOp(t *testing.T) {
	if _, err := AppendRequest(nil, &Request{ID: 1}); err == nil {
		t.Fatal("a request without an operation was encoded")
	}
}

func TestDecodeUnknownAndRepeated(t *testing.T) {
	cases := []struct {
		in   string
		want Response
	}{
		// Unknown fields of every wire type are skipped (field 9 is
		// PingInfo now: field 20 is the unknown varint).
		{"08 05 a0 01 07 51 0102030405060708 5a 03 616263 65 01020304 28 0a",
			Response{ID: 5, BytesSent: 10}},
		// The last value of a repeated scalar wins.
		{"08 01 08 02 10 03 10 05", Response{ID: 2, Status: 5}},
		// An empty record is an empty message.
		{"", Response{}},
		// A large field number.
		{"f8 ff ff ff 0f 01 08 09", Response{ID: 9}},
		{"08 01 22 00", Response{ID: 1}},
		{"08 01 40 02", Response{ID: 1, ShortSource: true}},
	}
	for _, c := range cases {
		got, err := DecodeResponse(unhex(t, c.in))
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, in := range []string{
		"08",                                  // truncated varint
		"08 80 80 80 80 80 80 80 80 80 80 01", // eleven bytes
		"08 ff ff ff ff ff ff ff ff ff 02",    // more than 64 bits
		"22 05 61",                            // length past the end
		"22 ff ff ff ff 0f",                   // huge length
		"51 01 02",                            // short fixed64
		"65 01",                               // short fixed32
		"0b 0c",                               // a group
		"0e",                                  // wire type 6
		"00 01",                               // field 0
		"0a 01 00",                            // id with the wrong type
		"20 01",                               // message with the wrong type
	} {
		if r, err := DecodeResponse(unhex(t, in)); err == nil {
			t.Errorf("%s: decoded as %+v", in, r)
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(unhex(f, "08 01 28 80 80 40 30 80 80 40 38 01"))
	f.Add(unhex(f, "08 05 10 04 18 ff ff ff ff ff ff ff ff ff 01 28 00 30 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			return
		}
		// What decodes re-decodes the same after the canonical fields are
		// written back.
		var out []byte
		out = appendKey(out, 1, wtVarint)
		out = appendVarint(out, r.ID)
		out = appendKey(out, 2, wtVarint)
		out = appendVarint(out, uint64(int64(r.Status)))
		out = appendKey(out, 3, wtVarint)
		out = appendVarint(out, uint64(int64(r.Error)))
		out = appendKey(out, 4, wtLen)
		out = appendVarint(out, uint64(len(r.Message)))
		out = append(out, r.Message...)
		out = appendKey(out, 5, wtVarint)
		out = appendVarint(out, r.BytesSent)
		out = appendKey(out, 6, wtVarint)
		out = appendVarint(out, r.FinalOffset)
		out = appendKey(out, 7, wtVarint)
		out = appendVarint(out, uint64(int64(r.Method)))
		if r.ShortSource {
			out = append(out, 0x40, 1)
		}
		r2, err := DecodeResponse(out)
		if err != nil || r2 != r {
			t.Fatalf("%x -> %+v -> %x -> %+v, %v", b, r, out, r2, err)
		}
	})
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []Request{
		{ID: 1, Op: OpSendfile},
		{ID: 2, Op: OpSendfile, Offset: 1 << 40, Count: 7, HasCount: true, NoFallback: true},
		{ID: 1<<64 - 1, Op: OpCancel, Target: 99},
		{ID: 3, Op: OpPing},
	} {
		b, err := AppendRequest(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRequest(b)
		if err != nil || got != r {
			t.Errorf("%+v -> %x -> %+v, %v", r, b, got, err)
		}
	}
	for _, in := range []string{"08", "12 05 08", "0a 00", "12 02 0a 00"} {
		if r, err := DecodeRequest(unhex(t, in)); err == nil {
			t.Errorf("%s: decoded as %+v", in, r)
		}
	}
}

// docs/PROTOCOL.md's Ping reply, then features unpacked and packed with an
// unknown value and an unknown field, then wrong wire types.
func TestPingInfo(t *testing.T) {
	got, err := DecodeResponse(unhex(t, "08 03 28 00 30 00 4a 09 08 01 12 05 30 2e 31 2e 30"))
	if err != nil || got.ID != 3 || got.Ping == nil || got.Ping.ProtocolVersion != 1 ||
		got.Ping.DaemonVersion != "0.1.0" || len(got.Ping.Features) != 0 {
		t.Fatalf("got %+v (%+v), %v", got, got.Ping, err)
	}
	got, err = DecodeResponse(unhex(t, "08 04 4a 0a 18 01 1a 02 04 07 18 02 28 05"))
	if err != nil || got.Ping == nil || fmt.Sprint(got.Ping.Features) != "[1 4 7 2]" {
		t.Fatalf("got %+v, %v", got.Ping, err)
	}
	for _, bad := range []string{"08 04 4a 02 10 01", "08 04 48 01", "08 04 4a 02 1a 01"} {
		if _, err := DecodeResponse(unhex(t, bad)); err == nil {
			t.Errorf("%s: decoded", bad)
		}
	}
	if got, _ := DecodeResponse(unhex(t, "08 01 22 00")); got.Ping != nil {
		t.Errorf("a reply without PingInfo has one: %+v", got.Ping)
	}
}
