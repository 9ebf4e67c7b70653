package poll

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The API's JSON is read in one pass with jsontext (the tokenizer of Go's
// encoding/json/v2) as it arrives: the batch envelope is checked, each
// payload is cut out of the stream verbatim (a tape keeps the bytes of the
// item being read) and its metadata is read on the way, without re-scanning
// it. Only the items themselves are kept, each payload in its own
// allocation, never the whole response. It accepts what encoding/json
// accepts: duplicate member names and invalid UTF-8 inside strings pass
// through (the payload is delivered unchanged either way).
var decodeOpts = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// DecodeBatch strictly decodes a poll response body:
// {"items":[{"id":<int>,"payload":<object>},...],"role":...}. Anything else
// (not an object, items missing or not an array, an id that is not an
// integer, a payload that is not an object, trailing data) is an error with a
// short, readable reason. Payload bytes are kept exactly as received (copied
// out of body). Items come back sorted by id with duplicate ids removed.
//
// One unusable item in an otherwise well-formed response (an id that is not
// a positive integer, a payload that is not an object) does not reject the
// page: the batch holds the items before it and the error is an *ItemError
// naming its position, so those items can be delivered and the cursor stops
// right before it.
func DecodeBatch(body []byte) (Batch, error) {
	b, _, err := decodeBatch(bytes.NewReader(body), BatchLimit)
	return b, err
}

// decodeBatch is DecodeBatch reading from r, for a poll that asked for
// limit items (Full: that many came). It also returns how many items were
// read whole, which tells the client, when r fails (the response limit),
// how much of the page fitted.
func decodeBatch(r io.Reader, limit int) (Batch, int, error) {
	pd := &pageDecoder{tape: tape{r: r}}
	pd.d = jsontext.NewDecoder(&pd.tape, decodeOpts...)
	if err := pd.checkStart(); err != nil {
		return Batch{}, 0, err
	}
	b, bad, err := pd.envelope()
	if err != nil {
		return Batch{}, pd.whole, err
	}
	if _, err := pd.d.ReadToken(); err != io.EOF {
		if pd.tape.err != nil { // a failed read, not trailing data
			return Batch{}, pd.whole, syntaxErr(err)
		}
		return Batch{}, pd.whole, errors.New("trailing data after the JSON object")
	}
	b.Full = len(b.Items) >= limit && bad == nil
	slices.SortStableFunc(b.Items, func(a, b Event) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	b.Items = slices.CompactFunc(b.Items, func(a, b Event) bool { return a.ID == b.ID })
	if bad != nil {
		return b, pd.whole, bad
	}
	return b, pd.whole, nil
}

// pageDecoder reads one poll answer from its tape.
type pageDecoder struct {
	d     *jsontext.Decoder
	tape  tape
	whole int    // items read to their end (good or unusable)
	slab  []byte // small payloads share it (fewer allocations)
}

// slabSize is the largest block small payloads are copied into (blocks
// start at 4 KiB and double); a payload larger than a sixteenth of it gets
// an allocation of its own, so that a delivered large payload is freed on
// its own.
const slabSize = 64 << 10

// keep copies a payload out of the tape.
func (pd *pageDecoder) keep(p []byte) []byte {
	if len(p) > slabSize/16 {
		return bytes.Clone(p)
	}
	if cap(pd.slab)-len(pd.slab) < len(p) {
		pd.slab = make([]byte, 0, min(slabSize, max(4<<10, 2*cap(pd.slab))))
	}
	n := len(pd.slab)
	pd.slab = append(pd.slab, p...)
	return pd.slab[n:len(pd.slab):len(pd.slab)]
}

// checkStart: the answer is a JSON object (the common mistakes, an empty
// body or an HTML error page, get a readable reason).
func (pd *pageDecoder) checkStart() error {
	switch pd.d.PeekKind() {
	case '{':
		return nil
	case 0:
		if _, err := pd.d.ReadToken(); err == io.EOF {
			return errors.New("empty response body")
		}
		if pd.tape.err != nil {
			return fmt.Errorf("reading the response: %w", pd.tape.err)
		}
	}
	start := pd.tape.start(17)
	if len(start) == 0 {
		return errors.New("empty response body")
	}
	return fmt.Errorf("response is not a JSON object (starts with %s)", describeStart(start))
}

// envelope reads the answer's object: its "items" and "role".
func (pd *pageDecoder) envelope() (Batch, *ItemError, error) {
	var (
		d        = pd.d
		b        Batch
		sawItems bool
		bad      *ItemError
	)
	err := pd.eachMember(func(name string) error {
		switch name {
		case "items":
			var err error
			b.Items, bad, err = pd.items()
			if err != nil {
				return err
			}
			sawItems = true
		case "role":
			v, err := d.ReadValue()
			if err != nil {
				return syntaxErr(err)
			}
			switch v.Kind() {
			case 'n':
				b.Role = ""
			case '"':
				r := unquote(v)
				if len(r) > 32 {
					return errors.New(`"role" is too long`)
				}
				b.Role = string(r)
			default:
				return errors.New(`"role" is not a string`)
			}
		}
		return nil
	}, "items", "role")
	if err != nil {
		return Batch{}, nil, err
	}
	if !sawItems {
		return Batch{}, nil, errors.New(`response has no "items" array`)
	}
	return b, bad, nil
}

// items reads the "items" array: the usable items before the first
// unusable one (bad), the rest only checked.
func (pd *pageDecoder) items() ([]Event, *ItemError, error) {
	d := pd.d
	if k := d.PeekKind(); k != '[' {
		if k == 'n' {
			return nil, nil, errors.New(`response has no "items" array`)
		}
		return nil, nil, kindErr(d, `"items"`, "an array")
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, nil, syntaxErr(err)
	}
	var (
		evs []Event
		bad *ItemError
	)
	for i := 0; d.PeekKind() != ']'; i++ {
		pd.tape.forget(d.InputOffset())
		if bad != nil { // only the items before the first bad one count
			if err := d.SkipValue(); err != nil {
				return nil, nil, syntaxErr(err)
			}
			pd.whole++
			continue
		}
		ev, err := pd.item(i)
		var ie *ItemError
		if errors.As(err, &ie) {
			if len(evs) > 0 {
				ie.After = evs[len(evs)-1].ID
			}
			bad = ie
			pd.whole++
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		evs = append(evs, ev)
		pd.whole++
	}
	if _, err := d.ReadToken(); err != nil { // ]
		return nil, nil, syntaxErr(err)
	}
	return evs, bad, nil
}

// tape is the reader under the decoder: it keeps the bytes read from the
// stream's offset base on, so that a payload the decoder walked through
// token by token can be cut out verbatim; forget drops what is behind the
// decoder (between items), so it holds about one item at a time.
type tape struct {
	r    io.Reader
	buf  []byte
	base int64
	err  error // the first read error other than io.EOF
}

func (t *tape) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// forget drops the stream's bytes before offset off.
func (t *tape) forget(off int64) {
	if n := int(off - t.base); n > 0 && n <= len(t.buf) {
		t.buf = t.buf[:copy(t.buf, t.buf[n:])]
		t.base = off
	}
}

// cut returns the stream's bytes [from, to): they alias the tape until
// the next read.
func (t *tape) cut(from, to int64) []byte { return t.buf[from-t.base : to-t.base] }

// start returns up to n bytes of the stream after leading whitespace, for
// an error message (it may read a little more of the stream).
func (t *tape) start(n int) []byte {
	var chunk [64]byte
	for len(bytes.TrimLeft(t.buf, jsonSpace)) < n && len(t.buf) < 64<<10 {
		m, err := t.r.Read(chunk[:])
		t.buf = append(t.buf, chunk[:m]...)
		if err != nil {
			break
		}
	}
	s := bytes.TrimLeft(t.buf, jsonSpace)
	return s[:min(n, len(s))]
}

const jsonSpace = " \t\r\n"

// ItemError is one unusable item in a well-formed response: Index is its
// position in "items" (0-based), After the id of the item before it (0 if
// none), Reason what is wrong with it (bounded, no payload bytes).
type ItemError struct {
	Index  int
	After  int64
	Reason string
}

func (e *ItemError) Error() string {
	where := fmt.Sprintf("items[%d]", e.Index)
	if e.After > 0 {
		where += fmt.Sprintf(" (the item after id %d)", e.After)
	}
	return where + " is unusable: " + e.Reason
}

func itemErr(i int, format string, args ...any) error {
	return &ItemError{Index: i, Reason: fmt.Sprintf(format, args...)}
}

// item reads items[i]: {"id":<int>,"payload":<object>}. The payload is
// copied out of the tape into its own allocation (the batch holds nothing
// else of the response).
func (pd *pageDecoder) item(i int) (Event, error) {
	d := pd.d
	if k := d.PeekKind(); k != '{' {
		if err := d.SkipValue(); err != nil { // k == 0: a syntax error
			return Event{}, syntaxErr(err)
		}
		return Event{}, itemErr(i, "it is a JSON %s, expected an object", kindName(k))
	}
	var (
		ev                Event
		idRaw             []byte // nil: no "id"
		sawPayload, badPl bool
	)
	err := pd.eachMember(func(name string) error {
		switch name {
		case "id":
			v, err := d.ReadValue()
			if err != nil {
				return syntaxErr(err)
			}
			idRaw = append(idRaw[:0], v...)
		case "payload":
			sawPayload = true
			if d.PeekKind() != '{' {
				badPl = true
				ev.Payload = nil
				if err := d.SkipValue(); err != nil {
					return syntaxErr(err)
				}
				return nil
			}
			badPl = false
			start := d.InputOffset()
			if err := readMeta(d, &ev); err != nil {
				return syntaxErr(err)
			}
			// The value starts after the name's ':' and any whitespace.
			ev.Payload = pd.keep(bytes.TrimLeft(pd.tape.cut(start, d.InputOffset()), jsonSpace+":"))
		}
		return nil
	}, "id", "payload")
	if err != nil {
		return Event{}, err
	}
	if idRaw == nil {
		return Event{}, itemErr(i, `missing "id"`)
	}
	id, err := strconv.ParseInt(string(idRaw), 10, 64)
	if err != nil {
		return Event{}, itemErr(i, `"id" is not an integer (%s)`, describeStart(idRaw))
	}
	if id <= 0 {
		return Event{}, itemErr(i, `"id" %d is not positive`, id)
	}
	if !sawPayload || badPl {
		return Event{}, itemErr(i, `id %d: "payload" is not a JSON object`, id)
	}
	ev.ID = id
	return ev, nil
}

// NewEvent builds an event from an item id and its raw payload, reading the
// metadata (eventType, id, timestamp) leniently: a missing field or one of an
// unexpected JSON type yields "", a number is kept as its JSON text. A
// payload that is not a valid JSON object yields no metadata at all.
func NewEvent(id int64, payload []byte) Event {
	ev := Event{ID: id, Payload: payload}
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || p[0] != '{' {
		return ev
	}
	d := jsontext.NewDecoder(bytes.NewBuffer(p), decodeOpts...)
	if readMeta(d, &ev) != nil {
		ev.EventType, ev.AlertID, ev.Timestamp = "", "", ""
		return ev
	}
	if _, err := d.ReadToken(); err != io.EOF { // trailing data: not one object
		ev.EventType, ev.AlertID, ev.Timestamp = "", "", ""
	}
	return ev
}

// readMeta reads one JSON object (the next value of d, which must be an
// object) to its end, keeping its top-level eventType, id and timestamp.
func readMeta(d *jsontext.Decoder, ev *Event) error {
	if _, err := d.ReadToken(); err != nil {
		return err
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return err
		}
		var dst *string
		switch {
		case nameIs(name, "eventType"):
			dst = &ev.EventType
		case nameIs(name, "id"):
			dst = &ev.AlertID
		case nameIs(name, "timestamp"):
			dst = &ev.Timestamp
		default:
			if err := d.SkipValue(); err != nil {
				return err
			}
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return err
		}
		*dst = scalarText(v)
	}
	_, err := d.ReadToken()
	return err
}

// nameIs reports whether the quoted member name raw is want.
func nameIs(raw jsontext.Value, want string) bool {
	if len(raw) == len(want)+2 && string(raw[1:len(raw)-1]) == want {
		return true
	}
	if !bytes.ContainsRune(raw, '\\') {
		return false
	}
	return string(unquote(raw)) == want
}

// eachMember reads the object that is the decoder's next value. For each
// member named one of names it calls member with that name, the value next
// in the decoder for member to read; other members are skipped. member's
// error ends the walk and is returned as is; syntax errors come back
// through syntaxErr. Between members the tape forgets what was read.
func (pd *pageDecoder) eachMember(member func(name string) error, names ...string) error {
	d := pd.d
	if _, err := d.ReadToken(); err != nil { // {
		return syntaxErr(err)
	}
	for d.PeekKind() != '}' {
		pd.tape.forget(d.InputOffset())
		raw, err := d.ReadValue()
		if err != nil {
			return syntaxErr(err)
		}
		i := slices.IndexFunc(names, func(n string) bool { return nameIs(raw, n) })
		if i < 0 {
			if err := d.SkipValue(); err != nil {
				return syntaxErr(err)
			}
			continue
		}
		if err := member(names[i]); err != nil {
			return err
		}
	}
	if _, err := d.ReadToken(); err != nil { // }
		return syntaxErr(err)
	}
	return nil
}

// unquote decodes a JSON string the tokenizer already read (so its syntax
// is valid); invalid UTF-8 in it becomes U+FFFD, as encoding/json does.
func unquote(v jsontext.Value) []byte {
	s, _ := jsontext.AppendUnquote(nil, v)
	return s
}

// maxMetaLen bounds one metadata value (it becomes a header or env var).
const maxMetaLen = 256

// scalarText renders a JSON string or number as text; anything else is "".
// Control characters are dropped so the value is always safe as an HTTP
// header or environment variable.
func scalarText(v jsontext.Value) string {
	var s []byte
	switch v.Kind() {
	case '"':
		if inner := v[1 : len(v)-1]; len(inner) <= maxMetaLen && plainASCII(inner) {
			return string(inner) // the common case: nothing to unescape or drop
		}
		s = unquote(v)
	case '0':
		s = v
	default:
		return ""
	}
	clean := make([]byte, 0, min(len(s), maxMetaLen))
	n := 0
	for len(s) > 0 && n < maxMetaLen {
		r, size := utf8.DecodeRune(s)
		if r >= 0x20 && r != 0x7f {
			clean = utf8.AppendRune(clean, r)
			n++
		}
		s = s[size:]
	}
	return string(clean)
}

// plainASCII: printable ASCII without escapes.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// syntaxErr turns a tokenizer error into a short reason.
func syntaxErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("response is not valid JSON: truncated")
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return fmt.Errorf("response is not valid JSON: syntax error at byte %d", se.ByteOffset)
	}
	return fmt.Errorf("response is not valid JSON: %s", bounded(err.Error(), 120))
}

// kindErr: the next value of d is of the wrong JSON type.
func kindErr(d *jsontext.Decoder, what, want string) error {
	k := d.PeekKind()
	if k == 0 { // a syntax error, reported as such
		_, err := d.ReadValue()
		return syntaxErr(err)
	}
	return fmt.Errorf("%s is a JSON %s, expected %s", what, kindName(k), want)
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}

func bounded(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
