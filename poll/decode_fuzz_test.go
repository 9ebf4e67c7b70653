package poll

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"testing/iotest"
)

// FuzzDecodeBatch: no input panics; an accepted batch is sorted, unique,
// positive ids, payloads are JSON objects taken verbatim from the input.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"items":[]}`,
		`{"items":[{"id":1,"payload":{"id":"100","eventType":"alert-created"}}],"role":"leader"}`,
		`{"items":[{"id":3,"payload":{}},{"id":2,"payload":{"x":[1,2,{"y":null}]}},{"id":3,"payload":{}}]}`,
		`{"items":[{"id":"1","payload":{}}]}`,
		`{"items":[{"id":1.0,"payload":{}}]}`,
		`{"items":{"id":1}}`,
		`[{"id":1}]`,
		`{"items":[{"id":1,"payload":{"big":123456789012345678901234567890,"s":"\u00e9\ud83d\udea8"}}]}`,
		`{"items":[{"id":9223372036854775807,"payload":{}}]}`,
		`{"items":[{"id":-1,"payload":{}}]}`,
		`{"items":[],"role":null}`,
		`{"items":[]}x`,
		`{"items":[{"id":1,"payload":{"a":`,
		"\x00\xff",
		``,
		"{\"items\":[{\"payload\":{\"id\":\"1\",\"id\":2,\"s\":\"\xff\"},\"id\":4}],\"role\":\"standby\"}",
		`{"items":[{"id":1,"payload":{"a":1,}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeBatch(body)
		// Streamed one byte at a time (every token and payload cut across
		// reads), the answer decodes the same.
		sb, _, serr := decodeBatch(iotest.OneByteReader(bytes.NewReader(body)), BatchLimit)
		if !reflect.DeepEqual(b, sb) || (err == nil) != (serr == nil) || err != nil && err.Error() != serr.Error() {
			t.Fatalf("streamed decode differs:\n%+v %v\n%+v %v", b, err, sb, serr)
		}
		if err != nil {
			if len(err.Error()) > 300 {
				t.Fatalf("unbounded error: %d bytes", len(err.Error()))
			}
			if _, ok := err.(*ItemError); !ok {
				return
			}
			// an unusable item: the items before it must be as good as any
		}
		var prev int64
		for _, ev := range b.Items {
			if ev.ID <= prev {
				t.Fatalf("ids not ascending/unique: %d after %d", ev.ID, prev)
			}
			prev = ev.ID
			if !json.Valid(ev.Payload) || ev.Payload[0] != '{' {
				t.Fatalf("payload not a JSON object: %q", ev.Payload)
			}
			if !bytes.Contains(body, ev.Payload) {
				t.Fatalf("payload not verbatim from input")
			}
		}
	})
}

// FuzzNewEvent: metadata is read leniently from any payload without a panic,
// bounded, and free of control characters (safe as a header or env var).
func FuzzNewEvent(f *testing.F) {
	for _, s := range []string{`{"id":"1","eventType":"alert-created","timestamp":"t"}`, `{"id":12345678901234567890}`,
		`{"eventType":"a\r\nb"}`, `{"id":[1]}`, `[]`, `{`, `{"id":"\u0000x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev := NewEvent(1, payload)
		for _, v := range []string{ev.EventType, ev.AlertID, ev.Timestamp} {
			if len([]rune(v)) > maxMetaLen {
				t.Fatalf("unbounded metadata: %d runes", len([]rune(v)))
			}
			for _, r := range v {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("control character %q in %q", r, v)
				}
			}
		}
		if string(ev.Payload) != string(payload) {
			t.Fatal("payload changed")
		}
	})
}
