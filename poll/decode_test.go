package poll_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// Payloads are sliced out of the response verbatim: whitespace inside,
// escapes, big numbers, duplicate names and invalid UTF-8 all pass through
// (encoding/json accepted them too); metadata is read in the same pass.
func TestDecodeBatchKeepsPayloadsVerbatim(t *testing.T) {
	payloads := []string{
		`{ "id" : "7", "eventType":"alert-created" , "n": 12345678901234567890123 }`,
		`{"s":"\u00e9\ud83d\udea8 \"q\"","id":"8","id":"9"}`,
		"{\"bad\":\"\xff\xfe\",\"eventType\":\"x\xffy\"}",
		`{"nested":{"id":"no","eventType":"no"},"arr":[{"id":1}],"timestamp":"2026-05-04T10:00:00Z"}`,
	}
	body := "{\n \"role\" : \"leader\", \"items\" : [ "
	for i, p := range payloads {
		if i > 0 {
			body += " ,\n"
		}
		body += `{"payload"` + " :\t" + p + ` , "id": ` + string(rune('1'+i)) + "}"
	}
	body += "] , \"extra\": {\"items\": 1} }\n"
	b, err := poll.DecodeBatch([]byte(body))
	require.NoError(t, err)
	require.Len(t, b.Items, len(payloads))
	assert.Equal(t, "leader", b.Role)
	for i, p := range payloads {
		assert.Equal(t, int64(i+1), b.Items[i].ID)
		assert.Equal(t, p, string(b.Items[i].Payload), "item %d verbatim", i)
	}
	meta := func(i int) [3]string {
		ev := b.Items[i]
		return [3]string{ev.EventType, ev.AlertID, ev.Timestamp}
	}
	assert.Equal(t, [3]string{"alert-created", "7", ""}, meta(0))
	assert.Equal(t, [3]string{"", "9", ""}, meta(1), "the last of duplicate names wins, as in encoding/json")
	assert.Equal(t, [3]string{"x\uFFFDy", "", ""}, meta(2), "invalid UTF-8 becomes U+FFFD in metadata only")
	assert.Equal(t, [3]string{"", "", "2026-05-04T10:00:00Z"}, meta(3), "only top-level fields are metadata")
}

// Metadata names match exactly (the API's spelling), escaped or not.
func TestEventMetadataNames(t *testing.T) {
	ev := poll.NewEvent(1, []byte(`{"ID":"upper","EventType":"upper","\u0069d":"escaped","event\u0054ype":"e"}`))
	assert.Equal(t, "escaped", ev.AlertID)
	assert.Equal(t, "e", ev.EventType)
	for _, bad := range []string{`{"id":"1"`, `{"id":"1"} x`, `[{"id":"1"}]`, `{"id":"1",}`} {
		ev := poll.NewEvent(1, []byte(bad))
		assert.Empty(t, ev.AlertID, "no metadata from invalid JSON %s", bad)
		assert.Equal(t, bad, string(ev.Payload))
	}
}

func TestDecodeBatchEnvelopeErrors(t *testing.T) {
	for body, msg := range map[string]string{
		`{"items":[{"id":1,"payload":{}}],}`:                       "syntax error at byte",
		`{"items":[{"id":1,"payload":{"a":1 "b":2}}]}`:             "syntax error at byte",
		`{"items":[{"id":1,"payload":{}}]`:                         "truncated",
		`{"items":true}`:                                           `"items" is a JSON boolean, expected an array`,
		`{"items":[null]}`:                                         "items[0] is unusable: it is a JSON null, expected an object",
		`{"items":[{"id":1,"payload":[]}]}`:                        `items[0] is unusable: id 1: "payload" is not a JSON object`,
		`{"items":[{"id":"x","payload":{}},{"id":2,"payload":{}]}`: "syntax error at byte",
		`{"items":[],"role":"` + strings.Repeat("x", 33) + `"}`:    `"role" is too long`,
	} {
		_, err := poll.DecodeBatch([]byte(body))
		if assert.Error(t, err, body) {
			assert.Contains(t, err.Error(), msg, body)
		}
	}
}

// One unusable item in a well-formed page: the items before it come back
// (sorted), the error names its position and what is wrong; nothing after
// it is used, and the rest of the response is still checked.
func TestDecodeBatchKeepsItemsBeforeAnUnusableOne(t *testing.T) {
	body := `{"items":[{"id":2,"payload":{"n":2}},{"id":1,"payload":{"n":1}},{"id":"three","payload":{}},{"id":4,"payload":{}},7],"role":"leader"}`
	b, err := poll.DecodeBatch([]byte(body))
	var ie *poll.ItemError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, 2, ie.Index)
	assert.Equal(t, int64(1), ie.After, "the item before it in the response")
	assert.Equal(t, `items[2] (the item after id 1) is unusable: "id" is not an integer ("\"three\"")`, err.Error())
	require.Len(t, b.Items, 2)
	assert.Equal(t, int64(1), b.Items[0].ID)
	assert.Equal(t, int64(2), b.Items[1].ID)
	assert.Equal(t, "leader", b.Role, "members after the items are still read")
	assert.False(t, b.Full)

	_, err = poll.DecodeBatch([]byte(`{"items":[{"id":1,"payload":{}},{"id":"x"}],"role":1}`))
	require.Error(t, err)
	assert.False(t, errors.As(err, &ie), "a broken envelope still rejects the page: %v", err)
}

// BenchmarkDecodeBatch: one full page of 100 realistic alert events.
func BenchmarkDecodeBatch(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i, p := range ilerttest.AlertEvents(poll.BatchLimit) {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%d,"payload":%s}`, i+1, p)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := poll.DecodeBatch(body); err != nil {
			b.Fatal(err)
		}
	}
}
