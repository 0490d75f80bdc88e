// Package wire encodes the data-plane requests and decodes the replies of
// sendfiled (proto/sendfiled.proto, package sendfiled.v1) by hand. The
// schema is small and stable; a hand-written codec keeps the module free of
// dependencies and encodes exactly what the C client (common/wire.c) does.
package wire

import (
	"errors"
)

// MaxRecord is the largest record either side accepts (WIRE_MAX_RECORD).
const MaxRecord = 4096

// Op is the request's operation (the Request.op oneof).
type Op int

const (
	OpSendfile Op = iota + 1
	OpCancel
	OpPing
)

// Request is one Request record. Fields not used by Op are ignored.
type Request struct {
	ID uint64
	Op Op
	// Sendfile
	Offset     uint64
	Count      uint64
	HasCount   bool
	NoFallback bool
	// Cancel
	Target uint64
}

// Field numbers and wire types.
const (
	wtVarint = 0
	wtI64    = 1
	wtLen    = 2
	wtI32    = 5
)

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendKey(b []byte, field, wt int) []byte {
	return appendVarint(b, uint64(field)<<3|uint64(wt))
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// AppendRequest appends the encoding of r to b. The id is always present,
// the oneof member always present (even when empty), and Sendfile fields
// only when they differ from their defaults, as the C encoder writes them.
func AppendRequest(b []byte, r *Request) ([]byte, error) {
	b = appendKey(b, 1, wtVarint)
	b = appendVarint(b, r.ID)
	switch r.Op {
	case OpSendfile:
		n := 0
		if r.Offset != 0 {
			n += 1 + varintLen(r.Offset)
		}
		if r.HasCount {
			n += 1 + varintLen(r.Count)
		}
		if r.NoFallback {
			n += 2
		}
		b = appendKey(b, 2, wtLen)
		b = appendVarint(b, uint64(n))
		if r.Offset != 0 {
			b = appendKey(b, 1, wtVarint)
			b = appendVarint(b, r.Offset)
		}
		if r.HasCount {
			b = appendKey(b, 2, wtVarint)
			b = appendVarint(b, r.Count)
		}
		if r.NoFallback {
			b = appendKey(b, 3, wtVarint)
			b = append(b, 0)
		}
	case OpCancel:
		b = appendKey(b, 3, wtLen)
		b = appendVarint(b, uint64(1+varintLen(r.Target)))
		b = appendKey(b, 1, wtVarint)
		b = appendVarint(b, r.Target)
	case OpPing:
		b = appendKey(b, 4, wtLen)
		b = append(b, 0)
	default:
		return b, errors.New("wire: request without an operation")
	}
	return b, nil
}

// Response is one Response record. Absent fields read as their defaults.
type Response struct {
	ID          uint64
	Status      int32
	Error       int32
	Message     string
	BytesSent   uint64
	FinalOffset uint64
	Method      int32
	ShortSource bool
	// A Ping's reply only (field 9): who answered.
	Ping *PingInfo
}

// PingInfo is the PingInfo of a Ping's reply, as it is on the wire.
type PingInfo struct {
	ProtocolVersion uint32
	DaemonVersion   string
	// The Feature values the daemon lists, in its order, unknown ones too.
	Features []int32
}

// decodePingInfo parses PingInfo: protocol_version = 1, daemon_version = 2,
// features = 3 (a repeated enum: one varint per field, or packed).
func decodePingInfo(p []byte) (*PingInfo, error) {
	info := &PingInfo{}
	err := walk(p, func(field uint64, wt int, v uint64, b []byte) bool {
		switch {
		case field == 1 && wt == wtVarint:
			info.ProtocolVersion = uint32(v)
		case field == 2 && wt == wtLen:
			info.DaemonVersion = string(b)
		case field == 3 && wt == wtVarint:
			info.Features = append(info.Features, int32(v))
		case field == 3 && wt == wtLen:
			for i := 0; i < len(b); {
				f, j, ok := readVarint(b, i)
				if !ok {
					return false
				}
				info.Features = append(info.Features, int32(f))
				i = j
			}
		case field <= 3:
			return false // a known field with the wrong type
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// ErrMalformed is returned for a record that is not a valid Response.
var ErrMalformed = errors.New("wire: malformed record")

func readVarint(p []byte, i int) (uint64, int, bool) {
	var v uint64
	for shift := uint(0); shift <= 63; shift += 7 {
		if i >= len(p) {
			return 0, i, false
		}
		c := p[i]
		i++
		if shift == 63 && c > 1 {
			return 0, i, false // more than 64 bits
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, true
		}
	}
	return 0, i, false
}

// DecodeResponse parses one Response record. Unknown fields are skipped, as
// protobuf requires; a field seen twice keeps its last value. A string that
// is not UTF-8 is kept as it is (proto2 does not check).
func DecodeResponse(p []byte) (Response, error) {
	var r Response
	i := 0
	for i < len(p) {
		key, j, ok := readVarint(p, i)
		if !ok {
			return Response{}, ErrMalformed
		}
		i = j
		field, wt := key>>3, int(key&7)
		if field == 0 || field > 1<<29-1 {
			return Response{}, ErrMalformed
		}
		switch wt {
		case wtVarint:
			v, j, ok := readVarint(p, i)
			if !ok {
				return Response{}, ErrMalformed
			}
			i = j
			switch field {
			case 1:
				r.ID = v
			case 2:
				r.Status = int32(v)
			case 3:
				r.Error = int32(v)
			case 5:
				r.BytesSent = v
			case 6:
				r.FinalOffset = v
			case 7:
				r.Method = int32(v)
			case 8:
				r.ShortSource = v != 0
			}
		case wtLen:
			n, j, ok := readVarint(p, i)
			if !ok || n > uint64(len(p)-j) {
				return Response{}, ErrMalformed
			}
			i = j + int(n)
			if field == 4 {
				r.Message = string(p[j:i])
			}
			if field == 9 {
				info, err := decodePingInfo(p[j:i])
				if err != nil {
					return Response{}, err
				}
				r.Ping = info
			}
		case wtI64:
			if len(p)-i < 8 {
				return Response{}, ErrMalformed
			}
			i += 8
		case wtI32:
			if len(p)-i < 4 {
				return Response{}, ErrMalformed
			}
			i += 4
		default:
			// Groups (3, 4) are not part of this schema; 6 and 7 do not exist.
			return Response{}, ErrMalformed
		}
		if field <= 8 && field != 4 && wt != wtVarint {
			return Response{}, ErrMalformed // a known field with the wrong type
		}
		if (field == 4 || field == 9) && wt != wtLen {
			return Response{}, ErrMalformed
		}
	}
	return r, nil
}

// DecodeRequest parses one Request record, as the daemon would: it is what
// tests that play the daemon's part need. Reserved Sendfile fields are
// skipped.
func DecodeRequest(p []byte) (Request, error) {
	var r Request
	err := walk(p, func(field uint64, wt int, v uint64, b []byte) bool {
		switch {
		case field == 1 && wt == wtVarint:
			r.ID = v
		case field >= 2 && field <= 4 && wt == wtLen:
			r.Op = Op(field - 1)
			r.Offset, r.Count, r.HasCount, r.NoFallback, r.Target = 0, 0, false, false, 0
			return walk(b, func(f uint64, wt int, v uint64, _ []byte) bool {
				if wt != wtVarint {
					// Only an unknown field may be something else.
					known := (field == 2 && f <= 6) || (field == 3 && f == 1)
					return !known
				}
				switch {
				case field == 2 && f == 1:
					r.Offset = v
				case field == 2 && f == 2:
					r.Count, r.HasCount = v, true
				case field == 2 && f == 3:
					r.NoFallback = v == 0
				case field == 3 && f == 1:
					r.Target = v
				}
				return true
			}) == nil
		case field <= 4:
			return false
		}
		return true
	})
	if err != nil {
		return Request{}, err
	}
	return r, nil
}

// walk calls fn for each top-level field of p: its number, wire type, and
// value (varints) or bytes (length-delimited). fn returns false to reject.
func walk(p []byte, fn func(field uint64, wt int, v uint64, b []byte) bool) error {
	for i := 0; i < len(p); {
		key, j, ok := readVarint(p, i)
		if !ok || key>>3 == 0 {
			return ErrMalformed
		}
		i = j
		var v uint64
		var b []byte
		switch wt := int(key & 7); wt {
		case wtVarint:
			if v, i, ok = readVarint(p, i); !ok {
				return ErrMalformed
			}
		case wtLen:
			n, j, ok := readVarint(p, i)
			if !ok || n > uint64(len(p)-j) {
				return ErrMalformed
			}
			b, i = p[j:j+int(n)], j+int(n)
		case wtI64, wtI32:
			n := 8
			if wt == wtI32 {
				n = 4
			}
			if len(p)-i < n {
				return ErrMalformed
			}
			i += n
		default:
			return ErrMalformed
		}
		if !fn(key>>3, int(key&7), v, b) {
			return ErrMalformed
		}
	}
	return nil
}
