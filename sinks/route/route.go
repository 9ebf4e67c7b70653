// Package route is what a connection does to its items before its target
// sees them: a jq filter that lets an item through or passes it over, and a
// jq transform whose output replaces what is delivered. Both wrap the
// connection's sink (poll.Sink), so every target, the dead-letter replay
// and every way of running (one-shot, --loop, --config, Lambda) get them
// from one place.
//
// jq is gojq's dialect. An expression sees the item's payload and nothing
// else: no environment ($ENV and env are empty objects), no input or
// inputs, no modules or files. Each evaluation has a time limit; an item
// on which an expression fails at run time (an error, a type error, the
// limit) is a permanent failure of that item (reason "filter" or
// "transform"): the cycle dead-letters it with its original payload.
package route

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/itchyny/gojq"

	"github.com/edgepoll/edgepoll/poll"
)

// DefaultTimeout bounds the evaluation of the expressions on one item.
const DefaultTimeout = time.Second

// Options are the --filter and --transform flags (and --config keys).
type Options struct {
	Filter    string `name:"filter" placeholder:"JQ" help:"Deliver an item only when the first output of this jq expression on its payload is true; other items are passed over (the cursor moves past them, counted outcome=filtered). See docs/feeding.md." group:"Filter and transform"`
	Transform string `name:"transform" placeholder:"JQ" help:"Deliver the first output of this jq expression on the payload (compact JSON) instead of the payload; metadata (headers, script environment, Kafka key) still come from the original payload." group:"Filter and transform"`

	filter, transform *program
}

// Compile compiles the expressions (once, at configuration time). A
// problem is a *poll.ConfigError naming the flag.
func (o *Options) Compile() error {
	var err error
	if o.filter, err = compile("filter", o.Filter); err != nil {
		return err
	}
	o.transform, err = compile("transform", o.Transform)
	return err
}

// Active reports whether a filter or a transform is configured.
func (o *Options) Active() bool { return o.Filter != "" || o.Transform != "" }

// Wrap returns s behind the compiled filter and transform (s itself when
// there is neither). Compile must have succeeded.
func (o *Options) Wrap(s poll.Sink) poll.Sink {
	if !o.Active() {
		return s
	}
	if (o.Filter != "" && o.filter == nil) || (o.Transform != "" && o.transform == nil) {
		if err := o.Compile(); err != nil {
			panic("route: Wrap before a successful Compile: " + err.Error())
		}
	}
	return &Sink{inner: s, filter: o.filter, transform: o.transform, timeout: DefaultTimeout}
}

// New returns s behind filter and transform (either may be ""), compiled
// here: for code that builds a route without flags (tests, benchmarks).
func New(s poll.Sink, filter, transform string) (poll.Sink, error) {
	o := &Options{Filter: filter, Transform: transform}
	if err := o.Compile(); err != nil {
		return nil, err
	}
	return o.Wrap(s), nil
}

// program is one compiled expression.
type program struct {
	name string // "filter" or "transform": the flag, the failure's reason
	code *gojq.Code
}

func compile(name, expr string) (*program, error) {
	if expr == "" {
		return nil, nil
	}
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, &poll.ConfigError{Field: name, Msg: "is not a valid jq expression: " + err.Error()}
	}
	// No environment: the loader yields nothing, so $ENV and env are {}
	// (gojq's default too; said here so that it stays so). No input
	// iterator (input and inputs do not compile), no module loader
	// (import and include do not compile).
	code, err := gojq.Compile(q, gojq.WithEnvironLoader(func() []string { return nil }))
	if err != nil {
		return nil, &poll.ConfigError{Field: name, Msg: "does not compile: " + err.Error()}
	}
	return &program{name: name, code: code}, nil
}

// errStopped: the evaluation ended because the caller's context did (a
// stop), not because of the item.
var errStopped = errors.New("stopped")

// first returns the first output of the program on v (ok false: none).
// ectx is ctx with the item's time limit.
func (p *program) first(ctx, ectx context.Context, v any) (out any, ok bool, err error) {
	it := p.code.RunWithContext(ectx, v)
	out, ok = it.Next()
	if !ok {
		return nil, false, nil
	}
	if e, isErr := out.(error); isErr {
		var halt *gojq.HaltError
		switch {
		case ctx.Err() != nil:
			return nil, false, errStopped
		case ectx.Err() != nil:
			return nil, false, poll.Permanent(p.name, fmt.Errorf("the %s took longer than the time limit (%s) on this item", p.name, DefaultTimeout))
		case errors.As(e, &halt) && halt.Value() == nil:
			return nil, false, nil // halt: no output
		}
		return nil, false, poll.Permanent(p.name, fmt.Errorf("the %s failed on this item: %v", p.name, e))
	}
	return out, true, nil
}

// Sink is a sink behind a filter and a transform.
type Sink struct {
	inner             poll.Sink
	filter, transform *program
	timeout           time.Duration // of one item's evaluation
}

// Apply is what the route makes of ev: the event to deliver (its payload
// transformed, its metadata the original's), poll.ErrFiltered, or the
// permanent failure of an expression. errStopped when ctx ended.
func (s *Sink) Apply(ctx context.Context, ev poll.Event) (poll.Event, error) {
	v, err := decode(ev.Payload)
	if err != nil {
		name := "filter"
		if s.filter == nil {
			name = "transform"
		}
		return ev, poll.Permanent(name, fmt.Errorf("the payload is not JSON: %v", err))
	}
	// One time limit for the item (a timer per item, not per expression:
	// it is a tenth of the cost of a typical evaluation).
	ectx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.filter != nil {
		out, ok, err := s.filter.first(ctx, ectx, v)
		if err != nil {
			return ev, err
		}
		if pass, _ := out.(bool); !ok || !pass {
			return ev, poll.ErrFiltered
		}
	}
	if s.transform != nil {
		out, ok, err := s.transform.first(ctx, ectx, v)
		if err != nil {
			return ev, err
		}
		if !ok {
			return ev, poll.Permanent("transform", errors.New("the transform produced no output for this item"))
		}
		b, err := gojq.Marshal(out)
		if err != nil {
			return ev, poll.Permanent("transform", fmt.Errorf("the transform's output is not JSON: %v", err))
		}
		ev.Payload = b
	}
	return ev, nil
}

// decode reads a payload for jq with jsontext (the tokenizer the poll
// decoder uses; twice as fast as encoding/json into any): objects, arrays,
// strings, booleans, null; an integer that fits an int is an int, any other
// number stays exact as its text (json.Number, which gojq computes with),
// so an id beyond 2^53 is not rounded.
func decode(payload []byte) (any, error) {
	d := jsontext.NewDecoder(bytes.NewReader(payload), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	v, err := decodeValue(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// maxDepth bounds nesting (the payload came from the API, but a recursion
// must never be unbounded).
const maxDepth = 1000

func decodeValue(d *jsontext.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	tok, err := d.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		return tok.String(), nil
	case '0':
		return number(tok.String()), nil
	case '{':
		m := make(map[string]any)
		for d.PeekKind() != '}' {
			tok, err := d.ReadToken()
			if err != nil {
				return nil, err
			}
			k := tok.String() // before the next read voids tok
			v, err := decodeValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		_, err := d.ReadToken()
		return m, err
	case '[':
		a := make([]any, 0, 4)
		for d.PeekKind() != ']' {
			v, err := decodeValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := d.ReadToken()
		return a, err
	}
	return nil, fmt.Errorf("unexpected %v", tok.Kind())
}

// number is a JSON number's text as gojq computes with it: an int when it
// is an integer that fits, else json.Number (exact).
func number(s string) any {
	if len(s) < 19 && !strings.ContainsAny(s, ".eE") {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	return json.Number(s)
}

// Send implements poll.Sink: every item goes through the route first, in
// order; filtered items and failed expressions are reported at once (the
// cycle passes them in order when the cursor gets there), the rest is
// handed to the inner sink in one batch (a pipelined target keeps its
// pipeline), its reports mapped back to the batch's indexes.
func (s *Sink) Send(ctx context.Context, evs []poll.Event, report func(i int, err error) bool) {
	pass := make([]poll.Event, 0, len(evs))
	idx := make([]int, 0, len(evs))
	for i, ev := range evs {
		out, err := s.Apply(ctx, ev)
		if errors.Is(err, errStopped) || ctx.Err() != nil {
			return // not reported: not delivered, polled again
		}
		if err != nil {
			if !report(i, err) {
				return // the cycle wants no new delivery started
			}
			continue
		}
		pass = append(pass, out)
		idx = append(idx, i)
	}
	if len(pass) == 0 {
		return
	}
	s.inner.Send(ctx, pass, func(j int, err error) bool {
		if j < 0 || j >= len(idx) {
			return report(-1, err) // out of range: the cycle logs and ignores it
		}
		return report(idx[j], err)
	})
}

// Close closes the inner sink.
func (s *Sink) Close() error { return s.inner.Close() }

// Check forwards to the inner sink's check (`edgepoll check`).
func (s *Sink) Check(ctx context.Context) (string, error) {
	if c, ok := s.inner.(poll.Checker); ok {
		return c.Check(ctx)
	}
	return "", nil
}
